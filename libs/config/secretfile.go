package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/strata-ref/strata/libs/crypto/keyfile"
)

// ReadSecretFile reads a secret (a store password) from a file, trimmed of
// surrounding white space. Secrets come from files, not variables, so that
// they are mounted (a Kubernetes Secret, the compose certs volume) rather
// than visible in the process environment; the file must be private to the
// process (keyfile.CheckPrivate), and may not be empty.
func ReadSecretFile(variable, path string) (Secret, error) {
	if path == "" {
		return "", fmt.Errorf("config: %s is required", variable)
	}
	if err := keyfile.CheckPrivate(path); err != nil {
		return "", fmt.Errorf("config: %s: %w", variable, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("config: %s: %w", variable, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("config: %s: %w", variable, errors.New("the file is empty"))
	}
	return Secret(s), nil
}
