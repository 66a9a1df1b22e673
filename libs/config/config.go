package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"

	"github.com/caarlos0/env/v11"
)

// Secret is a string that never prints: logs, %v and JSON all see "****".
type Secret string

// String masks the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "****"
}

// LogValue masks the value in slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText masks the value in any text or JSON encoding.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret itself, for the one place that needs it.
func (s Secret) Reveal() string { return string(s) }

// Load fills cfg (a pointer to a struct) from getenv. defaults, keyed by
// variable name, override `envDefault` tags; that is how services sharing
// one embedded struct get different defaults (each its own port).
// The error names the problem in one line, for example
// `config: required environment variable "STRATA_TLS_CERT" is not set`.
func Load(getenv func(string) string, cfg any, defaults map[string]string) error {
	vars, err := Vars(cfg)
	if err != nil {
		return err
	}
	environ := make(map[string]string, len(vars))
	for _, k := range vars {
		if v := getenv(k); v != "" {
			environ[k] = v
		} else if d, ok := defaults[k]; ok {
			environ[k] = d
		}
	}
	err = env.ParseWithOptions(cfg, env.Options{Environment: environ})
	if err == nil {
		return nil
	}
	// Name the variable, not the Go field, so an operator knows what to fix.
	var perr env.ParseError
	if errors.As(err, &perr) {
		keys := map[string]string{}
		walk(reflect.ValueOf(cfg), func(key, field string, _ reflect.Value) { keys[field] = key })
		return fmt.Errorf("config: %s: %v", keys[perr.Name], perr.Err)
	}
	return fmt.Errorf("config: %s", strings.TrimPrefix(strings.ReplaceAll(err.Error(), "\n", "; "), "env: "))
}

// Vars lists every environment variable that cfg's struct reads.
func Vars(cfg any) ([]string, error) {
	params, err := env.GetFieldParams(cfg)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	out := make([]string, 0, len(params))
	for _, p := range params {
		out = append(out, p.Key)
	}
	return out, nil
}

// Attrs renders cfg as slog attributes keyed by variable name, secrets masked,
// for the single "config" line a service logs at start.
func Attrs(cfg any) []any {
	var attrs []any
	walk(reflect.ValueOf(cfg), func(key, _ string, v reflect.Value) {
		if s, ok := v.Interface().(Secret); ok {
			attrs = append(attrs, slog.String(key, s.String()))
			return
		}
		attrs = append(attrs, slog.Any(key, v.Interface()))
	})
	return attrs
}

func walk(v reflect.Value, fn func(key, field string, v reflect.Value)) {
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("env")
		name, _, _ := strings.Cut(tag, ",")
		if name == "" && f.Type.Kind() == reflect.Struct {
			walk(v.Field(i), fn)
			continue
		}
		if name != "" {
			fn(name, f.Name, v.Field(i))
		}
	}
}

// VarsCommand is the argument that makes a service print the variables it
// reads, one per line, and exit: `ledger config-vars`. The compose and
// Kubernetes consistency tests use it instead of a hand-kept list.
const VarsCommand = "config-vars"

// PrintVars writes Vars(cfg), one per line.
func PrintVars(w io.Writer, cfg any) error {
	vars, err := Vars(cfg)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, strings.Join(vars, "\n"))
	return err
}
