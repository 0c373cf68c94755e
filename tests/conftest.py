import os

import torch

# Triton picks compiled or interpreted kernels when they are decorated, i.e. at import:
# without a GPU, interpret them so the kernels' own code is tested on the CPU.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
