# Sourced by scripts/test.sh and scripts/gpu-check.sh: puts the CUDA libraries of the pip wheels
# (nvidia-cuda-nvrtc, nvidia-cuda-runtime, nvidia-cublas, nvidia-nccl: site-packages/nvidia/*/lib)
# on LD_LIBRARY_PATH, where cudarc finds them, and their headers in ECGFM_CUDA_INCLUDE (NVRTC).
ECGFM_PY_SITE="$(python3 -c 'import site; print(site.getsitepackages()[0])')"
for dir in "$ECGFM_PY_SITE"/nvidia/*/lib; do
    if [ -d "$dir" ]; then
        LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
done
for dir in "$ECGFM_PY_SITE"/nvidia/*/include; do
    if [ -f "$dir/cuda_runtime.h" ]; then
        export ECGFM_CUDA_INCLUDE="$dir"
    fi
done
export LD_LIBRARY_PATH
