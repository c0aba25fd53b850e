"""Model compilation and inference backends: ONNX export, the backends, TensorRT engines, the
CUDA decode kernel.

- `backend`: the protocol every backend follows (and `BackendUnavailable`, `check_input`);
- `registry`: the backends by name, `load_backend`, `available_backends`, model-file lookup;
- one module per backend: `onnxruntime_backend`, `torch_backend` (CPU), `torch_cuda`,
  `tensorrt_backend` (GPU);
- `export` (ONNX), `tensorrt_build` (TensorRT engines, cached), `cuda_decode` (the kernel),
  `bench`, `cli`.

GPU modules (TensorRT, pycuda, torch CUDA) are imported lazily, inside the functions that need
them, so that this package imports on any machine.
"""
