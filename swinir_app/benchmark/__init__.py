"""Speed and memory against the official implementation: ``python -m swinir_app.benchmark`` (``swinir-app
benchmark``).

``command``: the options, :func:`main`, the usual run. ``clock``: interleaved rounds, ratios, peak memory, FLOPs.
``peers``: the official network and spandrel's, same weights. ``timing``: the usual rows (inference, ONNX Runtime,
a training step, tiled scaling). ``busy``: ``--busy``, the busy-machine thread policy. ``gpu``: ``--gpu-check``,
the GPU table. ``report``: the rows and the tables as text.
"""
from .busy import bench_busy, busy_process
from .clock import forward_flops, interleaved, matmul_gflops, peak_mib, ratio, rounds, timed
from .command import main
from .gpu import GPU_CHECK_CONFIG, GPU_CHECK_SCALING, GPU_CHECK_SIZE, GPU_CHECK_TILE, gpu_check
from .peers import reference, spandrel_network
from .report import BusyRow, Report, Row, format_busy, format_table, runnable, skipped
from .timing import bench_inference, bench_onnxruntime, bench_scaling, bench_train_step

__all__ = ["BusyRow", "GPU_CHECK_CONFIG", "GPU_CHECK_SCALING", "GPU_CHECK_SIZE", "GPU_CHECK_TILE", "Report", "Row",
           "bench_busy", "bench_inference", "bench_onnxruntime", "bench_scaling", "bench_train_step", "busy_process",
           "format_busy", "format_table", "forward_flops", "gpu_check", "interleaved", "main", "matmul_gflops",
           "peak_mib", "ratio", "reference", "rounds", "runnable", "skipped", "spandrel_network", "timed"]
