# Herald's front door for humans. Every recipe is a thin call of cargo or a script,
# so nothing here works only through just.

# List the recipes.
default:
    @just --list

# Install the command-line tools the checks use (just, grpcurl, buf, kubectl, kubernetes-validate, grpcio-tools, cargo-fuzz) into .tools/.
setup:
    bash scripts/tools.sh

# Run all five services locally on SQLite with a demo workspace (the embedded default).
dev:
    cargo run --release --bin herald -- dev

# Run the test suite on SQLite (the embedded default).
test:
    cargo test --workspace

# Run the test suite on PostgreSQL (127.0.0.1:5432; each test makes and drops its own database).
test-pg:
    HERALD_TEST_DATABASE=postgres cargo test --workspace

# Fuzz the rule parser for SECONDS (a crash or a broken round trip fails; see fuzz/README.md).
fuzz SECONDS="60":
    bash fuzz/run.sh {{SECONDS}} parse_rule

# Formatting, clippy and the protobuf lint.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    bash scripts/proto-lint.sh

# Format the Rust code.
fmt:
    cargo fmt --all

# Start the suite, check every server with grpcurl, run the README walkthrough and the Python client.
smoke:
    bash scripts/smoke.sh

# Render every Kustomize variant under deploy/ and validate it against the Kubernetes schemas.
deploy-check:
    bash scripts/deploy-check.sh

# Measure durable ingest throughput and event-to-stream latency against baselines (prints figures).
bench *ARGS:
    cargo build --release --bin herald && cargo run --release -p herald-bench -- {{ARGS}}

# Rebuild the web SDK, the demo app and the dashboard into web/dist/ (Node.js 20+; commit the result).
web:
    bash scripts/web.sh

# The browser tests: the demo app and the dashboard in headless Chromium against herald dev.
browser-test:
    bash scripts/browser-test.sh

# Everything CI runs.
ci:
    bash .ci/run
