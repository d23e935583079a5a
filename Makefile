# Thin wrappers; the work is in image/build.sh, the Go code and qemu-tests/.
SHELL := /bin/bash
GO ?= go
APT_PACKAGES := qemu-system-x86 qemu-utils kmod cpio xz-utils zstd postgresql-15 fdisk e2fsprogs smartmontools socat curl ca-certificates age openssh-server chromium pgbackrest binutils mtools ovmf minisign samba smbclient lvm2 chrony cryptsetup-bin swtpm swtpm-tools
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
VERSITYGW := github.com/versity/versitygw/cmd/versitygw@v1.8.0

.PHONY: help deps image run test unit qemu-test bench fuzz lint soak clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

deps: ## install the Debian packages the build and tests need (as root; skips what is there)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f '$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null || \
	  { echo "deps: apt-get install $$missing failed" >&2; exit 1; }; \
	  case " $$missing " in *" openssh-server "*) systemctl disable --now ssh >/dev/null 2>&1 || true;; esac; \
	  case " $$missing " in *" chrony "*) systemctl disable --now chrony >/dev/null 2>&1; service chrony stop >/dev/null 2>&1; true;; esac; \
	  case " $$missing " in *" samba "*) systemctl disable --now smbd nmbd samba-ad-dc >/dev/null 2>&1; service smbd stop >/dev/null 2>&1; service nmbd stop >/dev/null 2>&1; true;; esac; \
	fi
	@[ -x "$$($(GO) env GOPATH)/bin/versitygw" ] || { echo "installing versitygw (the S3 server of the backup tests)"; $(GO) install $(VERSITYGW); }

image: deps ## build the firmware image into build/ (incremental)
	@image/build.sh

run: image ## boot a demo unit in QEMU with 3 virtual disks and print the web UI address and setup code
	@$(GO) run ./qemu-tests/cmd/demo

unit: deps ## unit tests (real PostgreSQL and S3 servers on this machine where they are needed)
	$(GO) test ./...

qemu-test: image ## boot the real image in QEMU and run the scenario tests
	QEMU_TESTS=1 $(GO) test -count=1 -timeout 65m -v -parallel 3 ./qemu-tests/ 2>&1 | tee build/qemu-test.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic|\s+\S+_test.go)'; exit $${PIPESTATUS[0]}

test: unit qemu-test ## unit tests, then the QEMU suite

bench: image ## boot time and image size beside a bare Go init; firmware update (upload to blessed) beside a plain restart, automatic rollback, a pair's rolling update: longest client outage beside a plain switchover, commits lost; rebuild MB/s beside raw write MB/s; reshape (growing onto a new disk) MB/s beside rebuild MB/s; RAID 5 write MB/s with the partial parity log beside the bitmap, and the time to clean after a power cut and to take a member back; encrypted write MB/s beside plain; file shares: SMB write and read MB/s beside a local write, replicated SMB write beside the partner gone, failover to the first document stored; pull-to-degraded; SMART poll beside smartctl; failover beside its detection budget; database switchover, lag and loss beside their goals, commit latency sync beside async; backup MB/s beside pg_dump|zstd|age; history bytes; web UI p99 at 50 req/s beside a static file, page weight, daemon RSS
	QEMU_TESTS=1 $(GO) test -count=1 -run '^$$' -bench 'Boot|Rebuild|SMARTPoll|FileShares' -benchtime 3x -timeout 20m ./qemu-tests/
	QEMU_TESTS=1 $(GO) test -count=1 -run '^$$' -bench 'UI|Grow|RAID5Consistency|Encryption' -benchtime 1x -timeout 30m ./qemu-tests/
	QEMU_TESTS=1 $(GO) test -count=1 -run '^$$' -bench 'Failover|ReplicatedShares' -benchtime 1x -timeout 60m ./qemu-tests/
	QEMU_TESTS=1 $(GO) test -count=1 -run '^$$' -bench 'FirmwareUpdate|PairRollingUpdate' -benchtime 1x -timeout 80m ./qemu-tests/
	$(GO) test -count=1 -run '^$$' -bench Backup -benchtime 1x -timeout 20m ./appliance/backup/engine/
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x ./appliance/health/

soak: image ## the long QEMU scenarios make test leaves out: a pair's rolling update under a client load, a firmware update interrupted
	QEMU_TESTS=1 QEMU_SOAK=1 $(GO) test -count=1 -timeout 80m -v -parallel 2 -run 'TestPairRollingUpdate|TestFirmwareUpdateInterrupted' ./qemu-tests/

fuzz: ## fuzz the web UI's request parsers (JSON bodies and forms), 60 s each; the seed corpus runs in make unit
	$(GO) test -run '^$$' -fuzz FuzzAPIBodies -fuzztime 60s ./webui/
	$(GO) test -run '^$$' -fuzz FuzzForms -fuzztime 60s ./webui/

lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt needed: $$out"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

clean: ## remove build outputs (keeps the downloaded .debs)
	rm -rf build/kernel build/initramfs.cpio.zst build/appliance build/image.json build/mdadm
