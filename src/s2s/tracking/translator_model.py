"""The code of the logged MLflow Model (MLflow's models-from-code): the model is this file, not a
pickled object.

:func:`s2s.tracking.mlflow_model.log_model` logs it as ``python_model``; MLflow copies it into the
model folder beside the ``s2s`` package (``code_paths``) and runs it whenever the model is loaded
(``mlflow.pyfunc.load_model``, ``mlflow models serve``), so loading executes only this code: no
CloudPickle, and a model logged by one version of the code loads with the package logged beside it.
The model object does nothing until :meth:`~s2s.tracking.mlflow_model.Seq2SeqTranslator.load_context`,
which applies the run's numerics before its first tensor operation.
"""

import mlflow.models

from s2s.tracking.mlflow_model import Seq2SeqTranslator

mlflow.models.set_model(Seq2SeqTranslator())
