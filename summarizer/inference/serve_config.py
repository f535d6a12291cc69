"""How ``app.py --serve ray`` runs the model slots on Ray Serve: :class:`RayServeConfig`.

Kept apart from :mod:`summarizer.inference.ray_serve` so that ``app.py`` checks its flags
without importing torch or Ray (``--help`` stays fast; a wrong flag fails before anything starts).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # batcher imports torch
    from summarizer.inference.batcher import BatchLimits

SERVE_MODES = ("local", "ray")


@dataclass(frozen=True)
class RayServeConfig:
    """How the slots are served by Ray (``app.py --serve ray``).

    Attributes:
        address: ``None`` starts a local Ray instance on this machine; ``"auto"`` joins the
            cluster this machine belongs to (``ray start`` ran here); ``"HOST:PORT"`` joins the
            cluster whose head is there (port 6379 by default).
        replicas: fixed number of replicas (each holds all four slots); ignored with autoscaling.
        min_replicas, max_replicas: both given: Ray Serve's autoscaling between them, aiming at
            ``target_ongoing`` requests per replica.
        replica_cpus, replica_gpus: Ray resources reserved per replica; the replica's torch uses
            ``replica_cpus`` threads (at least 1).
        max_ongoing: requests one replica holds at once; they wait in its batcher, so this must
            be at least a batch's rows (16), else the router keeps them apart. The default, one
            batch of Summarize rows, also bounds how unevenly Ray Serve's router spreads a burst:
            with 64, 24 requests at once on two replicas came as 3 and 21 (two batches on one,
            while the other idled); with 16, at most 16 and 8. The rest wait at the router.
        target_ongoing: autoscaling target of requests per replica.
        local_cpus: CPUs of a local Ray instance (default: all of this machine's).
        start_timeout_s: seconds to wait for the replicas to run (each loads the filled slots first,
            a first ct2 conversion included) before giving up.
        limits: each replica's batching (:class:`~summarizer.inference.batcher.BatchLimits`; None:
            its defaults, 16 rows a batch).
    """

    address: str | None = None
    replicas: int = 1
    min_replicas: int | None = None
    max_replicas: int | None = None
    replica_cpus: float = 1.0
    replica_gpus: float = 0.0
    max_ongoing: int = 16
    target_ongoing: float = 16.0
    local_cpus: int | None = None
    start_timeout_s: float = 600.0
    limits: "BatchLimits | None" = None

    def __post_init__(self):
        if self.replicas < 1:
            raise ValueError(f"--replicas must be at least 1, got {self.replicas}.")
        if (self.min_replicas is None) != (self.max_replicas is None):
            raise ValueError("--min-replicas and --max-replicas go together: give both (autoscaling) or neither.")
        if self.min_replicas is not None and not 0 <= self.min_replicas <= self.max_replicas >= 1:
            raise ValueError(f"--min-replicas {self.min_replicas} / --max-replicas {self.max_replicas}: need "
                             "0 <= min <= max and max >= 1.")
        if self.replica_cpus < 0 or self.replica_gpus < 0:
            raise ValueError("--replica-cpus and --replica-gpus cannot be negative.")
        rows = self.limits.max_rows if self.limits is not None else 16
        if self.max_ongoing < rows:
            raise ValueError(f"max_ongoing ({self.max_ongoing}) must be at least a batch's rows ({rows}).")

    @property
    def autoscaling(self) -> bool:
        return self.min_replicas is not None

    @property
    def most_replicas(self) -> int:
        """The most replicas that can run (how many pieces :meth:`RaySlots.generate` cuts)."""
        return self.max_replicas if self.autoscaling else self.replicas

    def deployment_options(self) -> dict:
        """Keyword arguments of ``Deployment.options`` (Ray Serve's deployment config)."""
        scale = ({"autoscaling_config": {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                                         "target_ongoing_requests": self.target_ongoing}}
                 if self.autoscaling else {"num_replicas": self.replicas})
        return {**scale, "max_ongoing_requests": self.max_ongoing,
                "ray_actor_options": {"num_cpus": self.replica_cpus, "num_gpus": self.replica_gpus}}


def add_serving_flags(p: argparse.ArgumentParser) -> None:
    """``--serve local|ray`` and the Ray Serve flags (docs/serving.md)."""
    r = p.add_argument_group("serving (docs/serving.md)")
    r.add_argument("--serve", choices=("local", "ray"), default="local",
                   help="local: the model slots in this process (default); ray: as Ray Serve replicas, "
                        "on this machine or on the machines of a Ray cluster")
    r.add_argument("--replicas", type=int, default=1, help="with --serve ray: replicas, each holding all "
                                                            "four slots (default: %(default)s)")
    r.add_argument("--min-replicas", type=int, help="with --max-replicas: Ray Serve autoscaling between them")
    r.add_argument("--max-replicas", type=int, help="with --min-replicas: Ray Serve autoscaling between them")
    r.add_argument("--ray-address", metavar="auto|HOST:PORT",
                   help="join this Ray cluster (auto: the one `ray start` joined on this machine); "
                        "default: start Ray on this machine")
    r.add_argument("--replica-cpus", type=float, default=1.0, help="CPUs per replica (default: %(default)s)")
    r.add_argument("--replica-gpus", type=float, default=0.0, help="GPUs per replica (default: %(default)s)")


def ray_config_of(args: argparse.Namespace):
    """The :class:`RayServeConfig` of ``--serve ray`` (None for local).

    Raises:
        ValueError: a Ray flag without ``--serve ray``, or values out of range (naming the flag).
    """
    if args.serve != "ray":
        given = [flag for flag, value in (("--ray-address", args.ray_address), ("--min-replicas", args.min_replicas),
                                          ("--max-replicas", args.max_replicas)) if value is not None]
        if given or args.replicas != 1:
            raise ValueError(f"{', '.join(given) or '--replicas'} needs --serve ray.")
        return None
    return RayServeConfig(address=args.ray_address, replicas=args.replicas, min_replicas=args.min_replicas,
                          max_replicas=args.max_replicas, replica_cpus=args.replica_cpus,
                          replica_gpus=args.replica_gpus)
