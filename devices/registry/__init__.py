"""National do-not-call registries (Não Me Perturbe, the US National DNC), platform-wide.

The package, by concern:

* ``codec``: how one block of numbers is stored (uint16 array or 10,000-bit bitmap).
* ``parsing``: reading registry files (plain text, simple CSV, zip archives) into blocks;
  whether a number is valid is decided by the one normaliser, ``devices.keys``.
* ``store``: writing blocks: a full snapshot as a new generation, add/remove files merged.
* ``lookup``: is a number listed (the gate's rule 3), and which registry a number is for.
* ``freshness``: when a registry is stale, and what that holds back.
* ``imports``: the import jobs (uploads and server files), run in a worker.

**Storage.** A registry holds its numbers in ``RegistryBlock`` rows: one row per
(registry, generation, prefix), where the prefix is an E.164 number without its ``+`` and
last four digits (``+1 713 555 4101`` → prefix 1713555, suffix 4101). See ``codec``: no
block is larger than 1,250 bytes, so every block stays inline in its heap page and a
lookup is one index probe and one page.

**Generations.** A full snapshot is parsed, then written under a new generation (the
import's id) with ``COPY``, and in the same transaction the registry switches to it and
the old generation's rows are deleted. Incremental add/remove files merge into the current
generation's blocks in one transaction. Readers join the registry row to its blocks in one
statement, so they see the old numbers or the new ones, never a mix.

**Staleness.** A registry imported more than ``max_age_days`` ago (30 for Brazil, 31 for
the US) is stale: the policy gate defers telemarketing to its country and telemarketing
sub-campaigns there cannot start. One never imported does not block (pages warn instead).
"""
