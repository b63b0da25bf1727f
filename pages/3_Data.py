"""Data: import a bundle, see its validation errors and warnings, pick the active dataset."""

import json
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from pages.components import state, widgets
from rebal_core import services
from rebal_core.services import BundleInvalid, calibration_sentence, calibration_table, record_accuracy, workflow
from rebal_core.views.figures import plain
from rebal_core.views.tables import (
    ACCURACY_COLUMNS,
    DISCREPANCY_COLUMNS,
    ISSUE_COLUMNS,
    RECORD_ACCURACY_COLUMNS,
    SIGNAL_COLUMNS,
    in_order,
)

st.set_page_config(page_title="Data - Rebal", layout="wide")


def stock_adjustments(dataset) -> None:
    """Proposed corrections of the record from the counts: approve (they then feed every plan) or reject with a reason."""
    st.markdown(
        "**Stock adjustments**: approved ones correct the on hand every plan starts from; those under the policy's line-value threshold are approved by it."
    )
    if st.button("Propose adjustments from the counts", disabled=not actor.can("save_scenario"), key="data-propose"):
        widgets.attempt(
            lambda: workflow.propose_adjustments(
                engine=engine,
                actor=actor,
                dataset_id=dataset.id,
                network=state.network(dataset.id, state.version(dataset)),
            ),
            lambda n: f"{n} adjustment(s) proposed.",
            workflow.REFUSALS,
        )
    table = workflow.adjustments(engine=engine, dataset_id=dataset.id)
    if table.empty:
        return
    st.dataframe(
        in_order(table.drop(columns=["dataset_id", "version"]), DISCREPANCY_COLUMNS),
        hide_index=True,
        width="stretch",
        key="data-adjustments",
        column_config=widgets.column_config(DISCREPANCY_COLUMNS),
    )
    waiting = table[table["status"] == "proposed"]
    keys = [f"{r.site_id}/{r.sku_id}" for r in waiting.itertuples()]
    picked = st.multiselect(
        "Adjustments to decide", keys, key="data-adj-picked", placeholder="Pick proposed adjustments"
    )
    why = st.text_input("Reason (needed to reject)", key="data-adj-why")
    c1, c2 = st.columns(2)
    for col, action in ((c1, "approve"), (c2, "reject")):
        if col.button(
            f"{action.title()} {len(picked)}",
            disabled=not picked or not actor.can("decide_line"),
            key=f"data-adj-{action}",
        ):
            widgets.attempt(
                lambda action=action: workflow.decide_adjustments(
                    engine=engine,
                    actor=actor,
                    dataset_id=dataset.id,
                    positions=[tuple(k.split("/", 1)) for k in picked],
                    action=action,
                    note=why,
                ),
                lambda r, action=action: (
                    f"{action.title()}d {len(r.changed)} adjustment(s)."
                    + (" Skipped: " + "; ".join(r.skipped) if r.skipped else "")
                ),
                workflow.REFUSALS,
            )


@st.cache_data(show_spinner="Checking the cycle counts...", max_entries=4)
def counted(dataset_id: int, version: str) -> pd.DataFrame:  # noqa: ARG001 - version keys the cache
    return workflow.count_discrepancies(
        engine=state.engine(), dataset_id=dataset_id, network=state.network(dataset_id, version)
    )


st.title("Data")
actor = state.ensure_started()
engine = state.engine()
widgets.flash()

st.subheader("Datasets")
datasets = services.list_datasets(engine=engine)
active = state.active_dataset()
if datasets:
    table = pd.DataFrame(
        [
            {
                "id": d.id,
                "name": d.name,
                "planning date": d.as_of,
                "sites": d.sites,
                "skus": d.skus,
                "stock records": d.positions,  # inventory rows; Home counts positions with demand too
                "demand rows": d.demand_rows,
                "imported (UTC)": d.imported_at,
                "forecast": d.forecast_method,
            }
            for d in datasets
        ]
    )
    st.dataframe(table, hide_index=True, width="stretch", key="data-datasets")
    ids = [d.id for d in datasets]
    label = {d.id: f"{d.name} (id {d.id}, {d.as_of})" for d in datasets}
    chosen = st.selectbox(
        "Active dataset (used on every page)", ids, index=ids.index(active.id), format_func=label.get, key="data-active"
    )
    if chosen != st.session_state.get("dataset_id"):
        st.session_state["dataset_id"] = chosen
        st.rerun()

with st.expander("Import a bundle", expanded=not datasets):
    st.markdown(
        "A **.zip** of the bundle folder, an **.xlsx** workbook (one sheet per table), or the table files themselves "
        "(`sites.csv`, `skus.csv`, `inventory.csv`, `demand.csv`, optional `forecast.csv`, `inbound.csv`, `lanes.csv`, `counts.csv`, "
        "`.csv.gz` allowed, and `bundle.toml`). See the data contract in the README."
    )
    files = st.file_uploader(
        "Bundle files", type=["zip", "xlsx", "csv", "gz", "toml"], accept_multiple_files=True, key="data-upload"
    )
    typed_name = st.text_input("Dataset name", placeholder="defaults to the (first) file's name", key="data-name")
    name = typed_name.strip() or (Path(files[0].name).name.split(".")[0] if files else "")
    replace = st.checkbox("Replace a dataset of the same name", key="data-replace")
    if not actor.can("import_data"):
        st.caption(f"Importing needs the planner or admin role; you are a {actor.role}.")
    if st.button(
        "Validate and import", type="primary", disabled=not files or not actor.can("import_data"), key="data-import"
    ):
        with tempfile.TemporaryDirectory(prefix="rebal-upload-") as tmp:
            folder = Path(tmp)
            for f in files:
                (folder / Path(f.name).name).write_bytes(f.getvalue())
            archives = [p for p in folder.iterdir() if p.suffix.lower() in (".zip", ".xlsx")]
            source = archives[0] if len(files) == 1 and archives else folder
            bar = st.progress(0.0, text="Reading the bundle...")
            try:
                result = services.import_bundle(
                    engine=engine,
                    source=source,
                    name=name,
                    replace=replace,
                    progress=lambda f, m: bar.progress(min(f, 1.0), text=m),
                    actor=actor,
                )
            except BundleInvalid as exc:
                bar.empty()
                st.error(
                    f"The bundle has {len(exc.errors) + exc.more} error(s); nothing was imported. Fix them and upload again."
                )
                st.dataframe(
                    pd.DataFrame([e.as_row() for e in exc.errors + exc.warnings]),
                    hide_index=True,
                    width="stretch",
                    key="data-errors",
                    column_config=widgets.column_config(ISSUE_COLUMNS),
                )
            except services.DatasetExists as exc:
                bar.empty()
                st.error(plain(f"{exc}. Tick 'Replace' to overwrite it."))
            except workflow.REFUSALS as exc:  # a replace that would delete plans under way, or not the user's to make
                bar.empty()
                st.error(plain(exc))
            except Exception as exc:  # noqa: BLE001 - never a traceback: say what failed; the import is all or nothing
                bar.empty()
                st.error(plain(f"The upload could not be imported ({type(exc).__name__}: {exc}); nothing was stored."))
            else:
                bar.empty()
                st.session_state["dataset_id"] = result.dataset.id
                st.success(
                    f"Imported {plain(repr(result.dataset.name))}: {result.dataset.sites} sites, {result.dataset.skus} SKUs, {result.dataset.positions:,} positions in {result.seconds:.1f} s."
                )
                if result.deleted_plans:
                    st.warning(
                        f"{len(result.deleted_plans)} saved plan(s) on the replaced dataset were deleted with it: "
                        + plain(", ".join(repr(n) for n, _ in result.deleted_plans))
                    )
                if result.warnings:
                    st.dataframe(
                        pd.DataFrame([w.as_row() for w in result.warnings]),
                        hide_index=True,
                        width="stretch",
                        key="data-import-warnings",
                        column_config=widgets.column_config(ISSUE_COLUMNS),
                    )


def solved_ahead(dataset_id: int) -> None:
    """The Scenario lab's grid of settings solved in the background after the import (issue 24); the
    page polls only while its job runs."""
    job = services.presolve.latest(engine=state.engine(), dataset_id=dataset_id)
    if job is not None and job.active:
        st.fragment(grid_progress, run_every=2.0)(dataset_id)
        return
    if job is not None:
        st.caption(f"Scenario lab settings solved ahead: {job.status}, {job.message}.")
    else:
        st.caption("The Scenario lab's settings have not been solved ahead for this dataset.")
    asked = state.actor().can("save_scenario") and st.button("Solve the lab's settings ahead now", key="data-presolve")
    if asked and services.presolve.submit(engine=state.engine(), dataset_id=dataset_id) is None:
        st.info("Not started: presolving is turned off (REBAL_PRESOLVE=0) or the dataset may not be planned.")


def grid_progress(dataset_id: int) -> None:
    job = services.presolve.latest(engine=state.engine(), dataset_id=dataset_id)
    if job is None or not job.active:
        st.rerun()  # done: the page draws the result, and stops polling
    st.progress(min(job.progress, 1.0), text=f"Scenario lab settings solved ahead: {job.message}")


if active is not None:
    st.subheader(f"About {plain(active.name)}")
    solved_ahead(active.id)
    warnings = services.dataset_warnings(active)
    st.markdown(f"**Warnings at import:** {len(warnings)}")
    if len(warnings):
        st.dataframe(
            warnings,
            hide_index=True,
            width="stretch",
            key="data-warnings",
            column_config=widgets.column_config(ISSUE_COLUMNS),
        )
    st.markdown(f"**Demand forecast:** {active.forecast_method}")
    accuracy = json.loads(active.forecast_accuracy or "{}")
    calibration = accuracy.get("calibration") or {}
    if calibration.get("horizon_days"):
        st.markdown(
            f"**Spread of demand over {calibration['horizon_days']} days** (measured on {calibration['origins']} rolling forecast origins)"
        )
        st.caption(calibration_sentence(calibration))
        st.dataframe(calibration_table(calibration), hide_index=True, width="stretch", key="data-calibration")
    if accuracy.get("series"):
        rows = [
            {
                "pattern": "all",
                "series": accuracy["series"],
                **{k: accuracy[k] for k in ("mase", "mase_naive", "bias", "bias_naive")},
            }
        ]
        rows += [
            {"pattern": p, "series": accuracy["pattern_counts"].get(p, 0), "model": accuracy["chosen"].get(p), **v}
            for p, v in accuracy["by_pattern"].items()
        ]
        st.caption(
            f"Back-test on the last {accuracy['horizon_days']} days of history: MASE (lower is better, scaled by the one-step naive error) "
            "and bias ((forecast - actual) / actual), against a naive forecast (mean of the last 28 days)."
        )
        st.dataframe(
            in_order(pd.DataFrame(rows), ACCURACY_COLUMNS),
            hide_index=True,
            width="stretch",
            key="data-accuracy",
            column_config=widgets.column_config(ACCURACY_COLUMNS),
        )
    st.subheader("Signal quality")
    findings = services.dataset_signals(active)
    blocked = services.planning_blocked(active)
    if blocked:
        st.error(blocked)
        if actor.can("override"):
            why = st.text_input("Why plan anyway (kept in the audit log)", key="data-override-why")
            if st.button("Allow planning despite the critical findings", disabled=not why.strip(), key="data-override"):
                widgets.attempt(
                    lambda: workflow.override_signals(engine=engine, actor=actor, dataset_id=active.id, reason=why),
                    "Planning allowed; the override is in the audit log.",
                    workflow.REFUSALS,
                )
    elif active.signal_override:
        o = json.loads(active.signal_override)
        st.info(f"Critical findings overridden by {o['by']} on {o['at']}: {o['reason']}")
    counts = findings["severity"].value_counts()
    st.caption(
        f"{counts.get('critical', 0)} critical, {counts.get('warning', 0)} warning(s), {counts.get('info', 0)} info: stale data, missing days or sites, "
        "impossible values, spikes, demand shifts, forecast bias, dead stock. Critical findings block planning."
    )
    s1, s2 = st.columns(2)
    severities = s1.multiselect(
        "Severity", ["critical", "warning", "info"], default=["critical", "warning"], key="data-sig-sev"
    )
    checks = s2.multiselect("Check", sorted(findings["check"].unique()), key="data-sig-check", placeholder="All checks")
    shown = findings[findings["severity"].isin(severities or ["critical", "warning", "info"])]
    if checks:
        shown = shown[shown["check"].isin(checks)]
    st.dataframe(
        in_order(shown, SIGNAL_COLUMNS),
        hide_index=True,
        width="stretch",
        height=260,
        key="data-signals",
        column_config=widgets.column_config(SIGNAL_COLUMNS),
    )
    widgets.download_csv(shown, "signal-findings.csv", "Download these findings", key="data-signals-csv")

    st.subheader("Record accuracy (cycle counts)")
    discrepancies = counted(active.id, state.version(active))
    if discrepancies.empty:
        st.caption("This dataset has no counts.csv.")
    else:
        off = discrepancies[discrepancies["discrepancy_class"] != "agrees"]
        st.caption(
            f"{len(discrepancies):,} counted positions, {len(off):,} disagree with the system record. Record accuracy = share of counts that agree; "
            "the adjustment books the count where the count is the truth (unit of measure, receiving error, shrinkage)."
        )
        a1, a2 = st.columns(2)
        by_site = record_accuracy(discrepancies, ["site_id"]).sort_values("record_accuracy")  # worst first
        a1.dataframe(
            in_order(by_site, RECORD_ACCURACY_COLUMNS),
            hide_index=True,
            width="stretch",
            key="data-acc-site",
            column_config=widgets.column_config(RECORD_ACCURACY_COLUMNS),
        )
        by_category = record_accuracy(
            discrepancies, ["category"], skus=state.network(active.id, state.version(active)).skus
        ).sort_values("record_accuracy")
        a2.dataframe(
            in_order(by_category, RECORD_ACCURACY_COLUMNS),
            hide_index=True,
            width="stretch",
            key="data-acc-cat",
            column_config=widgets.column_config(RECORD_ACCURACY_COLUMNS),
        )
        st.dataframe(
            off[
                [
                    "date",
                    "site_id",
                    "sku_id",
                    "system_qty",
                    "counted_qty",
                    "difference",
                    "abs_value",
                    "discrepancy_class",
                    "evidence",
                    "adjustment",
                    "adjustment_value",
                ]
            ].sort_values("abs_value", ascending=False),  # the largest value off first
            hide_index=True,
            width="stretch",
            key="data-discrepancies",
            column_config=widgets.column_config(DISCREPANCY_COLUMNS),
        )
        widgets.download_csv(off, "count-discrepancies.csv", "Download the discrepancies", key="data-discrepancies-csv")
        stock_adjustments(active)

    with st.popover(
        "Delete this dataset",
        disabled=not actor.can("delete_data"),
        help=None if actor.can("delete_data") else "Needs the admin role",
    ):
        st.write(
            f"Delete **{plain(active.name)}** with all its rows and saved scenarios? This cannot be undone (the audit log keeps the record)."
        )
        if st.button("Delete", type="primary", key="data-delete"):
            try:
                workflow.delete_dataset(engine=engine, actor=actor, dataset_id=active.id)
            except workflow.REFUSALS as exc:
                st.error(plain(exc))
            else:
                st.session_state.pop("dataset_id", None)
                st.cache_data.clear()
                st.rerun()
