"""The ground floor: what every other part of zslbench may use, importing nothing of zslbench itself.

* :mod:`zslbench.core.errors` — the one user-error family (one line, exit code 2);
* :mod:`zslbench.core.registry` — small name → object registries;
* :mod:`zslbench.core.faults` — named fault points for crash tests;
* :mod:`zslbench.core.liveness` — is a process (host, pid, start time) still alive;
* :mod:`zslbench.core.files` — atomic file writes and folders built beside their final place;
* :mod:`zslbench.core.secrets` — passwords and tokens masked before anything is recorded or printed;
* :mod:`zslbench.core.version` — package and evaluation-protocol versions.
"""
