"""Pipeline runs in tests: run on the test's cluster, read a finished run back, interrupt one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class PipelineRun:
    """The outputs of one finished run, read back the way a user would read them."""

    output_dir: Path
    report: dict
    seq_len: int

    def dataset(self):
        import datasets

        return datasets.load_from_disk(str(self.output_dir / f"entity_coref_v2_{self.seq_len}"))

    def rows(self, columns: list[str] | None = None) -> list[dict]:
        dataset = self.dataset()
        if columns is not None:
            dataset = dataset.select_columns(columns)
        return dataset.to_list()

    def _parts(self, kind: str) -> list[Path]:
        folder = self.output_dir / kind if kind == "decisions" else self.output_dir / "_work" / kind
        return sorted(folder.glob("part-*.parquet"))

    def decisions(self) -> dict[str, str | None] | None:
        """{doc_id: rejected_by (None = kept)} from DIR/decisions, or None if not written."""
        import pyarrow.parquet as pq

        parts = self._parts("decisions")
        if not parts:
            return None
        out: dict[str, str | None] = {}
        for part in parts:
            table = pq.read_table(part, columns=["doc_id", "rejected_by"])
            for doc_id, reason in zip(table["doc_id"].to_pylist(), table["rejected_by"].to_pylist(), strict=True):
                assert doc_id not in out, f"document {doc_id} has two decisions"
                out[doc_id] = reason
        return out

    def candidate_rows(self) -> list[dict]:
        """Stage-1 rows: one per kept document, with its text and candidates."""
        import pyarrow.parquet as pq

        rows = []
        for part in self._parts("candidates"):
            for row in pq.read_table(part).to_pylist():
                rows.append({**row, "part": part.name})
        return rows

    def kept_ids(self) -> set[str]:
        decisions = self.decisions()
        if decisions is not None:
            return {doc_id for doc_id, reason in decisions.items() if reason is None}
        return {row["doc_id"] for row in self.candidate_rows()}

    def texts(self) -> dict[str, str]:
        return {row["doc_id"]: row["text"] for row in self.candidate_rows()}


def run_pipeline(
    client, inputs: list, config, output_dir: Path, *, exact_partition_size: int | None = None
) -> PipelineRun:
    """Run the whole pipeline on `client` (the test's cluster), as `Pipeline.run()`.

    `exact_partition_size` plans partitions of exactly that size, without the finer cut
    that a small corpus otherwise gets to keep every worker busy.
    """
    from dask_prep.pipeline.graph import Pipeline

    with client.as_current():
        pipeline = Pipeline([str(i) for i in inputs], config, str(output_dir))
        if exact_partition_size is not None:
            pipeline.partitions(exact_partition_size)
        report = pipeline.run()
    return PipelineRun(Path(output_dir), report, config.tokenize.seq_len)


def interrupt_after(proc, finished, count: int = 2) -> str:
    """SIGINT to the `dask-prep run` process `proc` once `finished()` holds `count` partitions.

    Checks the interrupted run's promise: exit 130, a hint to `--resume`, no traceback.
    Returns its stderr.
    """
    import signal
    import time

    while proc.poll() is None and len(finished()) < count:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.communicate()}"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    return stderr
