"""Versioned gene sets and value sets (topics per label, values per attribute); an edit is a new version."""

from __future__ import annotations

import json
from collections.abc import Sequence

from datagen_core.config import Gene, GeneSet, ValueSet
from datagen_core.errors import DatagenError
from datagen_core.records import utcnow
from datagen_core.store.connection import Connection


class GeneTables(Connection):
    def add_gene_set(
        self, genes: Sequence[Gene], source: str, note: str = "", constraints: Sequence[str] = ()
    ) -> GeneSet:
        with self.transaction() as cur:
            version = cur.execute("SELECT coalesce(max(version), 0) + 1 FROM gene_sets").fetchone()[0]
            gene_set = GeneSet(version=version, genes=tuple(genes), source=source, note=note,  # type: ignore[arg-type]
                               constraints=tuple(constraints))
            cur.execute(
                "INSERT INTO gene_sets VALUES (?, ?, ?, ?, ?, ?)",
                [version, json.dumps([g.model_dump() for g in gene_set.genes]), source, note, utcnow(),
                 json.dumps(list(gene_set.constraints))],
            )
        return gene_set

    def gene_sets(self) -> list[GeneSet]:
        rows = self.cursor().execute(
            "SELECT version, genes, source, note, constraints FROM gene_sets ORDER BY version"
        ).fetchall()
        return [
            GeneSet(version=v, genes=tuple(Gene(**g) for g in json.loads(genes)), source=s, note=n,
                    constraints=tuple(json.loads(c)))
            for v, genes, s, n, c in rows
        ]

    def gene_set(self, version: int | None = None) -> GeneSet | None:
        """A given version, or the latest when version is None; None when the project has no genes yet."""
        sets = self.gene_sets()
        if version is None:
            return sets[-1] if sets else None
        for gene_set in sets:
            if gene_set.version == version:
                return gene_set
        raise DatagenError(f"no gene set version {version}")

    def add_value_set(
        self, kind: str, items: dict[str, Sequence[str]], source: str, note: str = "",
        gene_set_version: int | None = None,
    ) -> ValueSet:
        """Save topics per label or values per attribute as the next version of that kind."""
        with self.transaction() as cur:
            version = cur.execute(
                "SELECT coalesce(max(version), 0) + 1 FROM value_sets WHERE kind = ?", [kind]
            ).fetchone()[0]
            value_set = ValueSet(kind=kind, version=version, items={k: tuple(v) for k, v in items.items()},  # type: ignore[arg-type]
                                 source=source, note=note, gene_set_version=gene_set_version)  # type: ignore[arg-type]
            cur.execute(
                "INSERT INTO value_sets VALUES (?, ?, ?, ?, ?, ?, ?)",
                [kind, version, json.dumps({k: list(v) for k, v in value_set.items.items()}), source, note,
                 gene_set_version, utcnow()],
            )
        return value_set

    def value_sets(self, kind: str) -> list[ValueSet]:
        """Every version of one kind, oldest first."""
        rows = self.cursor().execute(
            "SELECT version, items, source, note, gene_set_version FROM value_sets WHERE kind = ? ORDER BY version",
            [kind],
        ).fetchall()
        return [ValueSet(kind=kind, version=v, items=json.loads(items), source=s, note=n,  # type: ignore[arg-type]
                         gene_set_version=g) for v, items, s, n, g in rows]

    def value_set(self, kind: str, version: int | None = None) -> ValueSet | None:
        """A given version, or the latest when version is None; None when there is none yet."""
        sets = self.value_sets(kind)
        if version is None:
            return sets[-1] if sets else None
        for value_set in sets:
            if value_set.version == version:
                return value_set
        raise DatagenError(f"no {kind} version {version}")
