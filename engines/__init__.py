"""Model compilation and GPU inference: ONNX export, TensorRT engines, the CUDA decode kernel.

GPU modules (TensorRT, pycuda, torch CUDA) are imported lazily, inside the functions that need
them, so that this package imports on any machine.
"""
