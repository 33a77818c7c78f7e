"""On PYTHONPATH, moves the process into the cgroup (v1 or v2 folder) named by JOIN_CGROUP at start-up, so a
server and the workers it forks live under that cgroup's memory limit."""

import os

_folder = os.environ.get("JOIN_CGROUP")
if _folder:
    with open(os.path.join(_folder, "cgroup.procs"), "w") as procs:
        procs.write(str(os.getpid()))
