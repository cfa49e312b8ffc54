# Hyperspace: the two commands are `make up` and `make test`.
.PHONY: up down test build bench lint compose-config

up:            ## install/start PostgreSQL + S3, start hyperspace dev with a demo campaign
	bash scripts/up.sh

down:          ## stop what `make up` started
	bash scripts/down.sh

test:          ## the whole test suite (real PostgreSQL, S3, Temporal)
	bash scripts/test.sh

build:
	go build -o bin/hyperspace ./cmd/hyperspace

bench:         ## the measured numbers of BENCHMARKS.md
	go run ./cmd/hyperspace bench all

compose-config: ## validate docker-compose.yml (needs the docker client)
	HYPERSPACE_SITE_SECRET=$${HYPERSPACE_SITE_SECRET:-validation-only-secret-0123456789} sh -c "docker-compose config -q 2>/dev/null || docker compose config --quiet"
