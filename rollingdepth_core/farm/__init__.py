"""Scale-out on Ray (``pip install "rollingdepth[farm]"``): many shots, or one long shot, over the
GPUs of a machine or a cluster.

- `shots`: the shots of a run (folder, glob, CSV / JSON shot list), checked up front;
- `manifest`: OUTDIR/manifest.jsonl, one line per shot outcome, and the settings hash;
- `shot_folders`: temporary folders renamed into place when a shot is complete;
- `worker`: a worker that keeps the model and runs the single-clip code on whole shots;
- `cluster`, `dispatch`, `run`, `cli`: Ray, shots to workers, one run, the command line;
- `segments`: shots split at their cuts;
- `shard`: one long shot's snippets over many workers.

Only ``cluster`` imports Ray (at the top), and nothing outside this package imports it;
everything else here imports without it.
"""
