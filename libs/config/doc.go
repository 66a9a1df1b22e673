// Package config loads a service's typed configuration from environment
// variables, with defaults, required values and masked secrets.
//
// A service declares one struct with `env` tags (github.com/caarlos0/env
// syntax), sets per-service defaults by initialising it, and calls Load with
// the getenv function its run func was given, so tests pass their own
// environment instead of mutating the process's. Attrs renders the loaded
// values for the start-up log line with every Secret masked, and Vars lists
// the variables a struct reads (the compose consistency test uses it).
package config
