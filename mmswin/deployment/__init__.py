"""Deployment: ONNX export and its check in ONNX Runtime (:mod:`.onnx_export`)."""
