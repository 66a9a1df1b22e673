package deploycheck

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// parseDockerfile parses path with BuildKit's own parser into build stages.
func parseDockerfile(t testing.TB, path string) []instructions.Stage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return stages
}

// secretLike matches build inputs that must never enter an image: keys and
// certificates, the native stack's directory, env files, key-encryption
// keys and keysets.
var secretLike = regexp.MustCompile(`(?i)(\.pem$|\.key$|\.p12$|\.pfx$|\.jks$|(^|/)\.stack(/|$)|(^|/)certs(/|$)|(^|/)\.env|id_rsa|id_ed25519|kek|keyset|secret|password|token)`)

var secretEnv = regexp.MustCompile(`(?i)(password|secret|token|private|_key$|apikey)`)

// rootOK are the images allowed to run as root, and why.
var rootOK = map[string]string{
	"certs.Dockerfile": "the one-shot certs job chowns each key to its container's user (CAP_CHOWN); compose drops every other capability",
}

func TestDockerfiles(t *testing.T) {
	r := root(t)
	files, _ := filepath.Glob(filepath.Join(r, "deploy/docker/*.Dockerfile"))
	if len(files) < 6 {
		t.Fatalf("want a Dockerfile per service plus certs and loadtest in deploy/docker, found %d", len(files))
	}
	for _, path := range files {
		base := filepath.Base(path)
		t.Run(base, func(t *testing.T) {
			stages := parseDockerfile(t, path)
			if len(stages) < 2 {
				t.Fatalf("not multi-stage: %d stage(s)", len(stages))
			}
			names := map[string]bool{}
			for _, s := range stages {
				switch {
				case names[s.BaseName], s.BaseName == "scratch":
				case !pinned.MatchString(s.BaseName):
					t.Errorf("FROM %s is not pinned to an exact version", s.BaseName)
				}
				if s.Name != "" {
					names[s.Name] = true
				}
				for _, c := range s.Commands {
					checkNoSecrets(t, c)
				}
			}
			final := stages[len(stages)-1]
			if final.BaseName != "scratch" && !strings.HasPrefix(final.BaseName, "gcr.io/distroless/") {
				t.Errorf("final stage FROM %s: want scratch or distroless (no shell, no package manager)", final.BaseName)
			}
			user := ""
			for _, c := range final.Commands {
				switch c := c.(type) {
				case *instructions.UserCommand:
					user = c.User
				case *instructions.RunCommand:
					t.Errorf("final stage runs %q: build in an earlier stage and copy the result", c.String())
				case *instructions.CopyCommand:
					if c.From == "" {
						t.Errorf("final stage copies %v from the build context; copy the built binary from a build stage", c.SourcePaths)
					}
				}
			}
			if why, ok := rootOK[base]; ok {
				if user != "0:0" && user != "0" && user != "root" {
					t.Errorf("%s is allowed root only to say so explicitly (USER 0:0), got %q", base, user)
				}
				t.Logf("runs as root: %s", why)
			} else if user == "" || isRoot(user) {
				t.Errorf("final stage USER %q: want a non-root numeric user", user)
			}
			checkDockerignore(t, path)
		})
	}
}

func isRoot(user string) bool {
	u, _, _ := strings.Cut(user, ":")
	if u == "root" || u == "0" {
		return true
	}
	_, err := strconv.Atoi(u)
	return err != nil // names resolve through /etc/passwd, which scratch lacks
}

func checkNoSecrets(t *testing.T, c instructions.Command) {
	t.Helper()
	var sources []string
	switch c := c.(type) {
	case *instructions.CopyCommand:
		if c.From != "" {
			return
		}
		sources = c.SourcePaths
	case *instructions.AddCommand:
		t.Errorf("ADD %v: use COPY (ADD fetches URLs and unpacks archives)", c.SourcePaths)
		sources = c.SourcePaths
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			if secretEnv.MatchString(kv.Key) {
				t.Errorf("ENV %s bakes a secret into the image", kv.Key)
			}
		}
	case *instructions.ArgCommand:
		for _, a := range c.Args {
			if secretEnv.MatchString(a.Key) {
				t.Errorf("ARG %s: build arguments are recorded in the image history", a.Key)
			}
		}
	}
	for _, s := range sources {
		if s == "." || s == "./" || s == "/" || s == "*" {
			t.Errorf("COPY %s copies the whole build context (and whatever secrets are in it)", s)
		}
		if secretLike.MatchString(s) {
			t.Errorf("COPY %s looks like a secret", s)
		}
	}
}

// checkDockerignore: BuildKit reads <Dockerfile>.dockerignore beside the
// Dockerfile. It must exclude everything by default and every PEM file, so
// the native stack's keys never reach the build context.
func checkDockerignore(t *testing.T, dockerfile string) {
	t.Helper()
	b, err := os.ReadFile(dockerfile + ".dockerignore")
	if err != nil {
		t.Errorf("no %s.dockerignore: %v", filepath.Base(dockerfile), err)
		return
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 || lines[0] != "*" || !slices.Contains(lines, "**/*.pem") {
		t.Errorf("%s.dockerignore must start with * (deny by default) and exclude **/*.pem", filepath.Base(dockerfile))
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "!") && secretLike.MatchString(strings.TrimPrefix(l, "!")) {
			t.Errorf("%s.dockerignore lets %s in", filepath.Base(dockerfile), l)
		}
	}
}

// TestServiceDockerfiles: each service image is its own binary, exposes its
// two ports, and checks its health through itself.
func TestServiceDockerfiles(t *testing.T) {
	r := root(t)
	for _, svc := range Services {
		t.Run(svc.Name, func(t *testing.T) {
			stages := parseDockerfile(t, filepath.Join(r, "deploy/docker", svc.Name+".Dockerfile"))
			final := stages[len(stages)-1]
			bin := "/usr/local/bin/" + svc.Name
			var health, entry []string
			var exposed []string
			for _, c := range final.Commands {
				switch c := c.(type) {
				case *instructions.HealthCheckCommand:
					health = c.Health.Test
				case *instructions.EntrypointCommand:
					entry = c.CmdLine
				case *instructions.ExposeCommand:
					exposed = append(exposed, c.Ports...)
				}
			}
			if !slices.Equal(health, []string{"CMD", bin, "healthcheck"}) {
				t.Errorf("HEALTHCHECK %q: want CMD [%q, \"healthcheck\"] (no curl in the image)", health, bin)
			}
			if !slices.Equal(entry, []string{bin}) {
				t.Errorf("ENTRYPOINT %q, want [%q]", entry, bin)
			}
			want := []string{strconv.Itoa(svc.Port), strconv.Itoa(svc.Port + 1000)}
			if !slices.Equal(exposed, want) {
				t.Errorf("EXPOSE %v, want %v", exposed, want)
			}
		})
	}
}

// TestDockerBuildContexts copies exactly what each Dockerfile's build stage
// COPYs from the context into an empty directory and resolves the build
// there, without the workspace (GOWORK=off, as in the image): a missing
// module, package or embedded file shows up here instead of in
// `docker build`. `go list -deps` resolves imports and embed patterns
// without compiling.
func TestDockerBuildContexts(t *testing.T) {
	r := root(t)
	cases := map[string]string{"certs.Dockerfile": "tools", "loadtest.Dockerfile": "loadtest"}
	for _, svc := range Services {
		cases[svc.Name+".Dockerfile"] = "services/" + svc.Name
	}
	for file, module := range cases {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			ctx := t.TempDir()
			for _, c := range parseDockerfile(t, filepath.Join(r, "deploy/docker", file))[0].Commands {
				cp, ok := c.(*instructions.CopyCommand)
				if !ok || cp.From != "" {
					continue
				}
				for _, src := range cp.SourcePaths {
					if err := copyTree(filepath.Join(r, src), filepath.Join(ctx, src)); err != nil {
						t.Fatal(err)
					}
				}
			}
			cmd := exec.Command("go", "list", "-deps", "-f", "{{with .Error}}{{.}}{{end}}", ".")
			if module == "tools" {
				cmd.Args[len(cmd.Args)-1] = "./deploycheck/cmd/compose-certs"
			} else if module == "loadtest" {
				cmd.Args[len(cmd.Args)-1] = "./cmd/strata-load"
			}
			cmd.Dir = filepath.Join(ctx, module)
			cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly", "CGO_ENABLED=0")
			// Judge by the exit status and the package errors on stdout:
			// stderr also carries progress ("go: downloading ...") on a
			// machine whose module cache is still empty.
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if err != nil || strings.TrimSpace(stdout.String()) != "" {
				t.Errorf("the build context of %s does not build %s: %v\n%s%s", file, module, err, stdout.String(), stderr.String())
			}
		})
	}
}

// copyTree copies a file or directory, skipping what the .dockerignore files
// exclude (PEM files, tests, testdata).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			if d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return os.MkdirAll(target, 0o755)
		}
		if strings.HasSuffix(p, ".pem") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}
