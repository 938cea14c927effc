"""Exporting the FOMM networks for other runtimes.

``onnx_export`` (ONNX graphs + ``avatar-onnx.json`` sidecar, optional fp16 variant) ·
``sidecar`` (reading and checking an export folder) · ``triton`` (Triton model repository and
its offline validator). Nothing heavy is imported here.
"""
