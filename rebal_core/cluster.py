"""Where distributed work runs: a Ray cluster when one is asked for, else this process (issue 15).

``REBAL_RAY_ADDRESS`` (a Ray address, or ``local`` for a Ray started on this machine) or the
command line's ``--ray`` turns the distributed path on; Ray itself is optional
(``requirements-ray.txt``) and imported only then. A leaf: signals and decisions both use it.
"""

from __future__ import annotations

import os

RAY_ADDRESS_ENV = "REBAL_RAY_ADDRESS"


def ray_address(explicit: str | None = None) -> str | None:
    """The Ray cluster to use: ``explicit``, else REBAL_RAY_ADDRESS, else None (in this process)."""
    return explicit or os.environ.get(RAY_ADDRESS_ENV) or None


def connect(address: str, num_cpus: int | None = None):
    """Ray, connected to ``address`` (``"local"``: started here with ``num_cpus``) unless it already is."""
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError(
            f"a Ray cluster was asked for ({address!r}) but Ray is not installed: "
            f"pip install -r requirements-ray.txt (or unset {RAY_ADDRESS_ENV})"
        ) from exc
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    return ray
