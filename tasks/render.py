"""Prefect tasks of the pipeline: thin wrappers over plain modules."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from nst_core import NstError, StepInfo
from tasks.devices import device_slot
from tasks.gallery import build_gallery
from tasks.manifest import Manifest, Pair, read_manifest
from tasks.run_pair import failure_record, run_pair
from tasks.storage import finished, write_failure

__all__ = ["build_gallery_task", "load_manifest", "render_pair", "select_pairs"]


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry storage and network errors; not bad inputs, bad settings or timeouts."""
    try:
        state.result()
    except (NstError, TimeoutError):
        return False
    except (OSError, ConnectionError):
        return True
    except Exception:
        return False
    return False


@task(cache_policy=NO_CACHE)
def load_manifest(manifest: str, defaults: dict[str, Any] | None) -> Manifest:
    return read_manifest(manifest, defaults)


@task(cache_policy=NO_CACHE)
def select_pairs(pairs: list[Pair], out: str, force: bool) -> tuple[list[Pair], list[Pair]]:
    """(to render, already finished): finished pairs are skipped unless ``force``; no model is loaded."""
    done = [] if force else [p for p in pairs if finished(out, p.pair_id, p.fingerprint)]
    return [p for p in pairs if p not in done], done


@task(
    task_run_name="render-{pair.pair_id}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=_transient,
)
def render_pair(pair: Pair, out: str, log_every: int = 50) -> dict[str, Any]:
    """Render one pair on a free GPU (or the CPU) and write its outputs under ``out``."""
    logger = get_run_logger()

    def on_step(step: StepInfo) -> None:
        if step.iteration == 1 or step.iteration % log_every == 0 or step.iteration == pair.settings.iterations:
            logger.info(
                "iteration %d/%d: content %.4g style %.4g tv %.4g total %.4g (%.1f s)",
                step.iteration,
                pair.settings.iterations,
                step.content,
                step.style,
                step.tv,
                step.total,
                step.elapsed_s,
            )

    with device_slot() as device:
        try:
            return run_pair(pair, out, device, on_step)
        except Exception as exc:
            write_failure(out, pair.pair_id, failure_record(pair, exc))
            raise


@task(name="build-gallery", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=_transient)
def build_gallery_task(out: str, manifest: str | None = None, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``<out>/gallery/`` from what the output root holds."""
    return build_gallery(out, manifest, defaults)
