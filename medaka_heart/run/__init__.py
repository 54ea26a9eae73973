"""Running many videos: the per-video job (`jobs`), resume fingerprints (`resume`), where the
jobs run (`executors`: in-process, local worker processes, a Dask cluster) and how progress
is shown (`progress`). `medaka_heart.batch` puts them together."""
