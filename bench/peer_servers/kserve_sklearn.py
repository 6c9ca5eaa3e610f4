"""KServe's model server answering a joblib scikit-learn model, as its sklearnserver does.

Run in the KServe venv (.venv-peers/kserve): python kserve_sklearn.py MODEL.joblib NAME PORT
[WORKERS].
KServe's sklearnserver package is not published on PyPI, so this is the same few steps on the
`kserve` library: joblib.load at start, predict_proba on the V1/V2 input, KServe's own request
decoding and response encoding (kserve.utils.utils). Its REST server is bound to 127.0.0.1 (KServe
binds 0.0.0.0) and its gRPC server is off: the benchmark speaks V2 over HTTP only.
"""

from __future__ import annotations

import sys

import joblib
import kserve
from kserve import model_server
from kserve.protocol.rest.multiprocess import server as multiprocess
from kserve.protocol.rest.server import RESTServer
from kserve.utils.utils import get_predict_input, get_predict_response


class SklearnModel(kserve.Model):
    """A fitted scikit-learn estimator; answers its class probabilities."""

    def __init__(self, name: str, path: str):
        super().__init__(name)
        self.path = path
        self.model = None

    def load(self) -> bool:
        """Load the joblib file and say so."""
        self.model = joblib.load(self.path)
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        """predict_proba of the decoded input, encoded as the request's protocol wants."""
        return get_predict_response(payload, self.model.predict_proba(get_predict_input(payload)),
                                    self.name)


class LoopbackRESTServer(RESTServer):
    """KServe's REST server, listening on loopback only."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config.host = "127.0.0.1"


def main(path: str, name: str, port: str, workers: str = "1") -> None:
    """Load the model and serve it until stopped."""
    model_server.RESTServer = multiprocess.RESTServer = LoopbackRESTServer
    model = SklearnModel(name, path)
    model.load()
    kserve.ModelServer(http_port=int(port), enable_grpc=False,
                       workers=int(workers)).start([model])


if __name__ == "__main__":
    main(*sys.argv[1:5])
