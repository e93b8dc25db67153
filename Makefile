# radtriage: every task a developer or CI runs. `make help` lists them.
# Needs Go (go.mod's version) and, for `make test`, a Debian-like machine
# where .ci/services.sh can find or start PostgreSQL and Redis.

GO        ?= go
BIN       := bin/radtriage
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
ARGS      ?=
# Fuzz time per target in `make test` and `make fuzz`.
FUZZTIME  ?= 10s
# Packages also tested under the race detector in `make test` (with -short:
# tests that spawn processes or take minutes skip), the ones with goroutines
# of their own: request handling, the store, the push client, serve, the
# worklist.
RACE_PKGS ?= ./api/... ./store/... ./cmd/... ./worklist/... ./kernels/...
BENCH     ?= .
BENCHTIME ?= 1s

# Pixel codecs that need C libraries (JPEG 2000 via OpenJPEG, JPEG-LS via
# CharLS) are compiled in when .ci/codec-tags.sh finds their headers;
# `make test` installs them (.ci/services.sh) and then requires them
# (RADTRIAGE_REQUIRE_CODECS=1 turns "decoder missing" skips into failures).
# Evaluated when a recipe runs, so after `services` has installed them.
CODEC_TAGS = $(shell .ci/codec-tags.sh)
GOTAGS     = $(if $(CODEC_TAGS),-tags $(CODEC_TAGS))
CGO        = $(if $(CODEC_TAGS),1,0)
REQUIRE_CODECS = RADTRIAGE_REQUIRE_CODECS=$(if $(CODEC_TAGS),1,0)

# Recipes that run tests source the service addresses .ci/services.sh found.
SERVICES_ENV := .cache/services.env
WITH_SERVICES = if [ -f $(SERVICES_ENV) ]; then . ./$(SERVICES_ENV); fi;

.PHONY: help build run test unit race bench build-cuda fmt vet fuzz services services-stop clean goldens models eval

help:
	@echo 'make build        bin/radtriage (pure Go, plus the cgo JPEG 2000/JPEG-LS codecs when their headers are installed)'
	@echo 'make run          build, then bin/radtriage serve $$ARGS (SQLite + ./data, nothing to install)'
	@echo 'make test         services, vet (also -tags cuda), unit tests, race tests ($$RACE_PKGS), short fuzzing'
	@echo 'make bench        Go benchmarks ($$BENCH, $$BENCHTIME), ingest vs Orthanc (bench-ingest.md),'
	@echo '                  codecs vs dcmtk (bench-codecs.md), volume vs dcm2niix (bench-volume.md),'
	@echo '                  worklist vs redis-benchmark (bench-worklist.md),'
	@echo '                  kernels: denoisers vs scikit-image (bench-kernels-denoise.md),'
	@echo '                  U-Net conv layers vs PyTorch and onnxruntime (bench-kernels-conv.md),'
	@echo '                  ONNX model inference vs onnxruntime and PyTorch (bench-triage-models.md),'
	@echo '                  triage of ct-head-5mm by stage, ensemble models vs onnxruntime and PyTorch (bench-triage.md),'
	@echo '                  pipeline: STOW to worklist event, studies/hour with 1 and 2 workers, vs radtriage triage (bench-pipeline.md),'
	@echo '                  worklist page in headless chromium, 5,000 studies: first render, SSE re-order, key image (bench-ui.md)'
	@echo 'make demo         build, start serve on embedded defaults, push 5 phantom studies (2 ICH, 1 SDH), print the worklist order'
	@echo '                  (runs until Ctrl-C; DEMO_EXIT=1 stops instead)'
	@echo 'make fuzz         every Fuzz target for $$FUZZTIME'
	@echo 'make fmt | vet    gofmt -s -w | gofmt check + go vet'
	@echo 'make services     find or start PostgreSQL and Redis for the tests (.cache/services.env); chromium and axe-core for the browser tests'
	@echo 'make screenshots  docs/worklist.png and docs/study-panel.png: the worklist page on five triaged phantom studies, headless chromium'
	@echo 'make services-stop  stop the private instances make services started'
	@echo 'make build-cuda   bin/radtriage-cuda (CUDA backend; cuda.h + libcuda stub via .ci/cuda-headers.sh)'
	@echo 'make vet-cuda     go vet and go build with -tags cuda (part of make test; no GPU needed)'
	@echo 'make ptx          regenerate kernels/ptx/*.ptx from kernels/*.cu (nvcc 11.8, compute_80)'
	@echo 'make test-cuda-bin  bin/kernels-cuda.test, the kernels suite to run on a GPU machine (kernels/bench/GPU.md)'
	@echo 'make goldens      regenerate the kernels conformance goldens with PyTorch (/usr/bin/python3, python3-torch)'
	@echo 'make models       retrain the default triage ensemble (triage/models) on phantoms, PyTorch CPU (~1 h on 2 cores)'
	@echo 'make eval         the ensemble on 200 held-out phantoms and the real head CT: AUC, sensitivity, Dice, volume error (eval.md)'

build:
	CGO_ENABLED=$(CGO) $(GO) build $(GOTAGS) -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/radtriage

run: build
	./$(BIN) serve $(ARGS)

# The whole check, as CI runs it (.ci/run). Steps run in order; the first
# failure stops the run.
test: services vet vet-cuda ptx-check unit test-cuda-emu race fuzz

unit:
	$(WITH_SERVICES) $(REQUIRE_CODECS) CGO_ENABLED=$(CGO) $(GO) test $(GOTAGS) -count=1 ./...
	@# The pure-Go build (no C libraries) must build and answer "unsupported".
	CGO_ENABLED=0 $(GO) test -count=1 ./dicomio/... ./volume/...
	@# The kernels' plain-Go GEMM micro-kernel (CPUs without AVX2, and
	@# the reference for the assembly ones) runs the conformance suite too.
	$(GO) test -count=1 -tags purego ./kernels/...

race:
	$(WITH_SERVICES) CGO_ENABLED=1 $(GO) test $(GOTAGS) -count=1 -race -short $(RACE_PKGS)

# Go benchmarks, then the ingest benchmark: radtriage (SQLite, PostgreSQL)
# beside Debian's Orthanc + DICOMweb plugin in one run (.ci/bench-ingest.sh;
# the report lands in bench-ingest.md).
bench: services
	$(WITH_SERVICES) CGO_ENABLED=$(CGO) $(GO) test $(GOTAGS) -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -benchmem ./...
	$(WITH_SERVICES) .ci/bench-ingest.sh bench-ingest.md
	CGO_ENABLED=$(CGO) $(GO) run $(GOTAGS) ./cmd/codecbench -shared ../shared/dicom -out bench-codecs.md
	GOTAGS='$(GOTAGS)' CGO_ENABLED=$(CGO) .ci/bench-volume.sh
	$(WITH_SERVICES) .ci/bench-worklist.sh
	.ci/bench-kernels-denoise.sh bench-kernels-denoise.md
	.ci/bench-kernels-conv.sh bench-kernels-conv.md
	.ci/bench-triage-models.sh bench-triage-models.md
	.ci/bench-triage.sh bench-triage.md
	$(WITH_SERVICES) .ci/bench-pipeline.sh bench-pipeline.md
	.ci/bench-ui.sh bench-ui.md

# The product on one machine: serve on embedded defaults, five phantom
# studies pushed and triaged, the worklist order printed (.ci/demo.sh).
.PHONY: demo
demo: build
	BIN=$(BIN) .ci/demo.sh

# The README's screenshots of the worklist page: five phantom studies
# (two ICH, one SDH, two normal) pushed to serve on the embedded defaults
# and triaged, the page in headless chromium (cmd/uibench -screenshots).
.PHONY: screenshots
screenshots: build
	.ci/browser-deps.sh
	$(GO) run ./cmd/uibench -bin $(BIN) -screenshots docs

fuzz:
	GOTAGS='$(GOTAGS)' CGO_ENABLED=$(CGO) .ci/fuzz.sh $(FUZZTIME)

# bin/radtriage-cuda: the CUDA backend (kernels/cuda_*.go, the committed
# PTX) with the codecs found. Needs cuda.h and libcuda.so at build time
# (.ci/cuda-headers.sh finds or fetches them) and the NVIDIA driver where it
# runs; without a device it falls back to the CPU backend.
build-cuda:
	env $(CUDA_ENV) CGO_ENABLED=1 $(GO) build -tags '$(CUDA_TAGS)' -trimpath -ldflags '$(LDFLAGS)' -o bin/radtriage-cuda ./cmd/radtriage

# The PyTorch reference outputs of the kernels conformance suite
# (committed; each script is seeded, so a rerun reproduces them).
goldens:
	kernels/bench/deps.sh
	for f in kernels/testdata/golden_*.py; do \
		case $$f in *golden_common.py) continue;; esac; \
		/usr/bin/python3 $$f || exit 1; \
	done

# The default triage ensemble: phantoms made and preprocessed by
# bin/radtriage, trained with PyTorch CPU, exported to ONNX with model cards
# (triage/train/train.py). The result is committed; training data are
# cached in .cache/train.
models: build
	kernels/bench/deps.sh
	/usr/bin/python3 triage/train/train.py --radtriage $(BIN) --out triage/models --work .cache/train

# The ensemble on held-out phantoms (seeds never used in training) and the
# real head CT; fails when a target of the triage issue is missed.
EVAL_N ?= 200
eval:
	CGO_ENABLED=$(CGO) $(GO) run $(GOTAGS) ./cmd/triageeval -n $(EVAL_N) -shared ../shared/dicom -out eval.md -json eval.json

fmt:
	gofmt -s -w $$($(GO) list -f '{{.Dir}}' ./...)

vet:
	@unformatted=$$(gofmt -s -l $$($(GO) list -f '{{.Dir}}' ./...)); \
	if [ -n "$$unformatted" ]; then echo "gofmt -s needed (make fmt):"; echo "$$unformatted"; exit 1; fi
	CGO_ENABLED=$(CGO) $(GO) vet $(GOTAGS) ./...
	CGO_ENABLED=0 $(GO) vet ./...

services:
	.ci/services.sh
	.ci/browser-deps.sh

services-stop:
	.ci/services.sh stop

clean:
	rm -rf bin

# ---- CUDA (the kernels' GPU backend; kernels/bench/GPU.md) ----
# Evaluated when a recipe runs: cgo flags for cuda.h and libcuda.so.
CUDA_ENV  = $(shell .ci/cuda-headers.sh)
comma    := ,
CUDA_TAGS = cuda$(if $(CODEC_TAGS),$(comma)$(CODEC_TAGS))
NVCC     ?= nvcc
# PTX for compute capability 8.0 (Ampere) and newer; the driver JIT-compiles
# it for the device at load.
NVCCFLAGS ?= -ptx -arch=compute_80 -O3

.PHONY: ptx ptx-check vet-cuda test-cuda-bin test-cuda-emu

# Regenerates kernels/ptx/*.ptx from kernels/*.cu (committed; nvcc's
# output is deterministic, so a rerun changes nothing unless a .cu did).
ptx:
	@mkdir -p kernels/ptx
	for f in kernels/*.cu; do \
		$(NVCC) $(NVCCFLAGS) -o kernels/ptx/$$(basename $$f .cu).ptx $$f || exit 1; \
	done

# make test: the committed PTX is what the .cu files compile to (where nvcc
# is installed; the cuda build itself never needs it).
ptx-check:
	@if ! command -v $(NVCC) >/dev/null; then echo "ptx-check: no nvcc (Debian non-free nvidia-cuda-toolkit); committed PTX not re-derived"; exit 0; fi; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	for f in kernels/*.cu; do \
		p=$$(basename $$f .cu).ptx; \
		$(NVCC) $(NVCCFLAGS) -o $$tmp/$$p $$f || exit 1; \
		cmp -s $$tmp/$$p kernels/ptx/$$p || { echo "kernels/ptx/$$p is not what $$f compiles to: run make ptx"; exit 1; }; \
	done; echo "ptx-check: kernels/ptx matches kernels/*.cu"

# The cuda build must vet and build everywhere, GPU or not.
vet-cuda:
	env $(CUDA_ENV) CGO_ENABLED=1 $(GO) vet -tags '$(CUDA_TAGS)' ./...
	env $(CUDA_ENV) CGO_ENABLED=1 $(GO) build -tags '$(CUDA_TAGS)' ./...

# The kernels' test binary with the CUDA backend, to carry to a GPU machine
# (kernels/bench/GPU.md): conformance suite and benchmarks.
test-cuda-bin:
	@mkdir -p bin
	env $(CUDA_ENV) CGO_ENABLED=1 $(GO) test -c -tags cuda -o bin/kernels-cuda.test ./kernels

# The CUDA conformance suite without a GPU: the test binary against a CPU
# stand-in for libcuda.so.1 that runs the project's .cu kernels as C++
# (kernels/internal/cuemu). It checks indexing, tiling, edges and the launch
# code; races, speed and the real driver still need a GPU (GPU.md).
test-cuda-emu: test-cuda-bin
	env $(CUDA_ENV) kernels/internal/cuemu/build.sh kernels .cache/cuemu
	cd kernels && LD_LIBRARY_PATH=$(CURDIR)/.cache/cuemu RADTRIAGE_REQUIRE_GPU=1 ../bin/kernels-cuda.test -test.run 'CUDA' -test.count 1
