# The local model's extra targets: the llama.cpp reference test and the ONNX benchmark.
#
# llama.cpp (through llama-cpp-python) is the independent reference for the ONNX SmolLM2.
# It compiles from source: about 8 minutes on two idle cores, far longer beside the control
# plane's Go build, which is why `make test` skips the reference test unless it is installed.
# The native build (the CPU reports AMX and AVX-512) crashes on the first token here, so the
# flags are portable AVX2 ones. The wheel is cached outside the repo: only the first run pays.
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CPP_WHEELS := $(LLMAGENTS_CACHE)/wheels/llama-cpp-portable
LLAMA_CPP_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF

.PHONY: reference-deps test-reference bench-onnx

$(VENV)/.llama-cpp: $(VENV)/.installed
	ls $(LLAMA_CPP_WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
	  CMAKE_ARGS="$(LLAMA_CPP_CMAKE_ARGS)" $(PY) -m pip wheel --no-deps --no-cache-dir \
	    -w $(LLAMA_CPP_WHEELS) 'llama-cpp-python==$(LLAMA_CPP_VERSION)'
	$(PY) -m pip install --quiet $(LLAMA_CPP_WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl
	touch $@

reference-deps: $(VENV)/.llama-cpp

test-reference: reference-deps
	$(PY) -m pytest -s -p no:xdist tests/model/test_smollm2_reference.py

bench-onnx: venv
	$(PY) bench/onnx_sidecar.py
