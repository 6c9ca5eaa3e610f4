"""The Open Inference Protocol (V2, as KServe, MLServer and Triton speak it), beside /api/v1.

endpoints: the blueprint (health, metadata, infer) and its errors; wire: a request body into
typed tensors (JSON or binary); tensors: tensors into rows of features, checked as /api/v1's.
"""
