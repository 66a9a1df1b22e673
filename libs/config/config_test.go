package config_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/strata-ref/strata/libs/config"
)

type Common struct {
	Addr string `env:"T_ADDR" envDefault:":8441"`
}

type svcConfig struct {
	Common
	DSN      string        `env:"T_DSN,required"`
	Password config.Secret `env:"T_PASSWORD"`
	Timeout  time.Duration `env:"T_TIMEOUT" envDefault:"2s"`
}

func getenv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		preset  string
		wantErr string
		check   func(t *testing.T, c svcConfig)
	}{
		{name: "defaults", env: map[string]string{"T_DSN": "x"}, check: func(t *testing.T, c svcConfig) {
			if c.Addr != ":8441" || c.Timeout != 2*time.Second {
				t.Fatalf("defaults not applied: %+v", c)
			}
		}},
		{name: "service default wins over envDefault", env: map[string]string{"T_DSN": "x"}, preset: ":9999", check: func(t *testing.T, c svcConfig) {
			if c.Addr != ":9999" {
				t.Fatalf("Addr = %q", c.Addr)
			}
		}},
		{name: "env wins over service default", env: map[string]string{"T_DSN": "x", "T_ADDR": ":1"}, preset: ":9999", check: func(t *testing.T, c svcConfig) {
			if c.Addr != ":1" {
				t.Fatalf("Addr = %q", c.Addr)
			}
		}},
		{name: "required missing", env: map[string]string{}, wantErr: `T_DSN`},
		{name: "bad duration", env: map[string]string{"T_DSN": "x", "T_TIMEOUT": "soon"}, wantErr: "T_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c svcConfig
			var defaults map[string]string
			if tt.preset != "" {
				defaults = map[string]string{"T_ADDR": tt.preset}
			}
			err := config.Load(getenv(tt.env), &c, defaults)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %v, want one line naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestSecretsAreMasked(t *testing.T) {
	var c svcConfig
	if err := config.Load(getenv(map[string]string{"T_DSN": "x", "T_PASSWORD": "hunter2"}), &c, nil); err != nil {
		t.Fatal(err)
	}
	if c.Password.Reveal() != "hunter2" {
		t.Fatal("secret not loaded")
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", config.Attrs(&c)...)
	out := buf.String()
	if strings.Contains(out, "hunter2") || !strings.Contains(out, `"T_PASSWORD":"****"`) || !strings.Contains(out, `"T_ADDR":":8441"`) {
		t.Fatalf("log line = %s", out)
	}
}

func TestVars(t *testing.T) {
	vars, err := config.Vars(&svcConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(vars, ",")
	for _, want := range []string{"T_ADDR", "T_DSN", "T_PASSWORD", "T_TIMEOUT"} {
		if !strings.Contains(got, want) {
			t.Fatalf("Vars = %s, missing %s", got, want)
		}
	}
}

// STRATA_ENV is dev or production; a typo, another case or an unset
// variable must refuse to start rather than fall through to dev.
func TestEnvironment(t *testing.T) {
	type cfg struct {
		Env config.Environment `env:"T_ENV,required"`
	}
	for _, v := range []string{"dev", "production"} {
		var c cfg
		if err := config.Load(getenv(map[string]string{"T_ENV": v}), &c, nil); err != nil || string(c.Env) != v {
			t.Fatalf("%s: %v, %q", v, err, c.Env)
		}
	}
	for _, v := range []string{"", "prod", "Production", "staging", "DEV", " dev"} {
		var c cfg
		err := config.Load(getenv(map[string]string{"T_ENV": v}), &c, nil)
		if err == nil || !strings.Contains(err.Error(), "T_ENV") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("STRATA_ENV=%q: err = %v; want a one-line refusal naming the variable", v, err)
		}
		if c.Env.IsDev() {
			t.Fatalf("STRATA_ENV=%q left dev on", v)
		}
	}
	if (config.Environment("")).IsDev() {
		t.Fatal("zero Environment is dev")
	}
}
