"""``htcondor``: the plan as an HTCondor DAG, one node per task plus a FINAL node.

``dag.py`` writes the DAG and submit files into the run directory; ``executor.py`` is the
adapter the engine sees, and submits the DAG through the ``htcondor2`` bindings when a
schedd is reachable.
"""

from tilefleet.engine.executors.htcondor.dag import DagFiles, write_dag
from tilefleet.engine.executors.htcondor.executor import HTCondorExecutor, HTCondorSettings

__all__ = ["DagFiles", "HTCondorExecutor", "HTCondorSettings", "write_dag"]
