// Command cql runs CQL statements against Strata's Cassandra node over
// mutual TLS. The native stack (deploy/native/stack.sh) uses it to wait for
// the node and to create keyspaces; developers use it as a tiny cqlsh.
//
//	cql [flags] 'STATEMENT; STATEMENT; ...'   statements from the arguments
//	cql [flags] < schema.cql                  statements from standard input
//	cql [flags] -                             same, explicitly
//	cql -wait 120s                            no statements: wait until the node
//	                                          answers, print its version, exit
//
// Statements are split on ';' outside string literals, quoted identifiers,
// $$-strings and comments. Rows of a SELECT are printed tab-separated with a
// header line. The exit status is non-zero if connecting or any statement
// fails; execution stops at the first failing statement.
//
// Defaults come from the environment that `stack.sh env` prints:
// STRATA_CASSANDRA_HOST, STRATA_CASSANDRA_PORT, STRATA_CASSANDRA_CA,
// STRATA_CASSANDRA_CERT, STRATA_CASSANDRA_KEY, STRATA_CASSANDRA_USERNAME,
// STRATA_CASSANDRA_PASSWORD_FILE; without them the certificates are taken
// from $STRATA_STACK_DIR/certs or the nearest .stack/certs above the working
// directory, with the analytics workload's client certificate and role
// (PasswordAuthenticator: the certificate opens the connection, the role's
// password logs in).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "cql:", err)
		os.Exit(1)
	}
}

type options struct {
	host, ca, cert, key, keyspace, consistency, serverName string
	user, password, passwordFile                           string
	port                                                   int
	wait, timeout                                          time.Duration
	useTLS, quiet                                          bool
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	certs := defaultCertsDir()
	fs := flag.NewFlagSet("cql", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.host, "host", envOr("STRATA_CASSANDRA_HOST", "127.0.0.1"), "Cassandra address")
	fs.IntVar(&o.port, "port", envInt("STRATA_CASSANDRA_PORT", 19042), "native transport (CQL) port")
	fs.StringVar(&o.ca, "ca", envOr("STRATA_CASSANDRA_CA", filepath.Join(certs, "ca.pem")), "PEM file of the CA that signed the server certificate")
	fs.StringVar(&o.cert, "cert", envOr("STRATA_CASSANDRA_CERT", filepath.Join(certs, "analytics.pem")), "client certificate (PEM); empty to send none")
	fs.StringVar(&o.key, "key", envOr("STRATA_CASSANDRA_KEY", filepath.Join(certs, "analytics-key.pem")), "client private key (PEM)")
	fs.StringVar(&o.serverName, "server-name", "", "name to verify in the server certificate (default: -host)")
	fs.StringVar(&o.user, "user", envOr("STRATA_CASSANDRA_USERNAME", "analytics"), "role to log in as; empty to send no credentials")
	fs.StringVar(&o.passwordFile, "password-file", envOr("STRATA_CASSANDRA_PASSWORD_FILE", filepath.Join(certs, "cassandra-analytics.password")),
		"file holding the role's password")
	fs.StringVar(&o.password, "password", "", "the role's password itself (only for the well-known default superuser's; prefer -password-file)")
	fs.StringVar(&o.keyspace, "keyspace", "", "keyspace to use")
	fs.StringVar(&o.consistency, "consistency", "ONE", "consistency level of the statements")
	fs.DurationVar(&o.wait, "wait", 0, "keep retrying the connection this long before giving up (e.g. 120s)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "timeout of one connection attempt and of each statement")
	fs.BoolVar(&o.useTLS, "tls", true, "use TLS; -tls=false exists only to check that the server refuses plaintext")
	fs.BoolVar(&o.quiet, "q", false, "print nothing but errors and query rows")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cql [flags] ['STATEMENT; ...' | -]   (statements are read from stdin when not given)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}

	script, err := readScript(fs.Args(), stdin)
	if err != nil {
		return err
	}
	stmts := SplitStatements(script)

	cluster, err := o.cluster()
	if err != nil {
		return err
	}
	session, err := connect(cluster, o.wait, stderr, o.quiet)
	if err != nil {
		return fmt.Errorf("connect %s: %w", net.JoinHostPort(o.host, strconv.Itoa(o.port)), err)
	}
	defer session.Close()

	if len(stmts) == 0 {
		// Probe mode: prove that the node answers queries, not only handshakes.
		var version string
		ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
		defer cancel()
		if err := session.Query("SELECT release_version FROM system.local").ScanContext(ctx, &version); err != nil {
			return fmt.Errorf("probe query: %w", err)
		}
		if !o.quiet {
			fmt.Fprintf(stdout, "ok: Cassandra %s at %s\n", version, net.JoinHostPort(o.host, strconv.Itoa(o.port)))
		}
		return nil
	}
	for _, stmt := range stmts {
		if err := execute(session, stmt, o.timeout, stdout); err != nil {
			return fmt.Errorf("%s: %w", abbreviate(stmt), err)
		}
	}
	return nil
}

// readScript returns the statements given as arguments, or standard input
// when there are none (or the only argument is "-").
func readScript(args []string, stdin io.Reader) (string, error) {
	if len(args) == 1 && args[0] == "-" || len(args) == 0 {
		if len(args) == 0 && isTerminal(stdin) {
			return "", nil // interactive shell with no input: probe only
		}
		b, err := io.ReadAll(stdin)
		return string(b), err
	}
	return strings.Join(args, " "), nil
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (o *options) cluster() (*gocql.ClusterConfig, error) {
	c := gocql.NewCluster(o.host)
	c.Port = o.port
	c.Keyspace = o.keyspace
	c.Timeout = o.timeout
	c.ConnectTimeout = o.timeout
	c.NumConns = 1
	c.ProtoVersion = 0 // negotiate (Cassandra 5.0 speaks v5)
	c.Logger = gocql.NewLogger(gocql.LogLevelError)
	// One node on loopback: the peers table is empty, and the address we dial
	// is the one to keep using.
	c.DisableInitialHostLookup = true
	cons, err := parseConsistency(o.consistency)
	if err != nil {
		return nil, err
	}
	c.Consistency = cons
	if o.user != "" {
		pw := o.password
		if pw == "" {
			b, err := os.ReadFile(o.passwordFile)
			if err != nil {
				return nil, fmt.Errorf("password of %s: %w", o.user, err)
			}
			pw = strings.TrimSpace(string(b))
		}
		c.Authenticator = gocql.PasswordAuthenticator{Username: o.user, Password: pw}
	}
	if o.useTLS {
		tc, err := o.tlsConfig()
		if err != nil {
			return nil, err
		}
		c.SslOpts = &gocql.SslOptions{Config: tc, EnableHostVerification: true}
	}
	return c, nil
}

func (o *options) tlsConfig() (*tls.Config, error) {
	caPEM, err := os.ReadFile(o.ca)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no certificate found", o.ca)
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, ServerName: o.serverName}
	if tc.ServerName == "" {
		tc.ServerName = o.host // an IP is checked against the IP SANs
	}
	if o.cert != "" || o.key != "" {
		pair, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// connect opens a session, retrying until wait has passed.
func connect(c *gocql.ClusterConfig, wait time.Duration, stderr io.Writer, quiet bool) (*gocql.Session, error) {
	deadline := time.Now().Add(wait)
	for attempt := 1; ; attempt++ {
		s, err := c.CreateSession()
		if err == nil {
			return s, nil
		}
		if time.Now().Add(time.Second).After(deadline) {
			return nil, err
		}
		if !quiet && attempt%10 == 1 {
			fmt.Fprintf(stderr, "cql: waiting for %s: %v\n", c.Hosts[0], err)
		}
		time.Sleep(time.Second)
	}
}

func execute(s *gocql.Session, stmt string, timeout time.Duration, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	iter := s.Query(stmt).IterContext(ctx)
	cols := iter.Columns()
	if len(cols) > 0 {
		names := make([]string, len(cols))
		for i, c := range cols {
			names[i] = c.Name
		}
		fmt.Fprintln(stdout, strings.Join(names, "\t"))
		row := map[string]interface{}{}
		for iter.MapScan(row) {
			vals := make([]string, len(cols))
			for i, n := range names {
				vals[i] = fmt.Sprint(row[n])
			}
			fmt.Fprintln(stdout, strings.Join(vals, "\t"))
			row = map[string]interface{}{}
		}
	}
	return iter.Close()
}

func parseConsistency(s string) (gocql.Consistency, error) {
	return gocql.ParseConsistencyWrapper(strings.ToUpper(s))
}

// SplitStatements splits a CQL script on ';' that are not inside a string
// literal ('...'), a quoted identifier ("..."), a $$-string or a comment
// (-- or // to end of line, /* ... */). Blank statements are dropped;
// comments are kept in the text (the server ignores them).
func SplitStatements(script string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" && !onlyComments(s) {
			out = append(out, s)
		}
		cur.Reset()
	}
	for i := 0; i < len(script); i++ {
		ch := script[i]
		switch {
		case ch == ';':
			flush()
			continue
		case ch == '\'' || ch == '"':
			// Copy through the closing quote. A doubled quote (the CQL escape)
			// closes and immediately reopens the literal, which is the same.
			end := strings.IndexByte(script[i+1:], ch)
			if end < 0 {
				cur.WriteString(script[i:])
				i = len(script)
				continue
			}
			cur.WriteString(script[i : i+1+end+1])
			i += 1 + end
			continue
		case strings.HasPrefix(script[i:], "$$"):
			end := strings.Index(script[i+2:], "$$")
			if end < 0 {
				cur.WriteString(script[i:])
				i = len(script)
				continue
			}
			cur.WriteString(script[i : i+2+end+2])
			i += 2 + end + 1
			continue
		case strings.HasPrefix(script[i:], "--") || strings.HasPrefix(script[i:], "//"):
			end := strings.IndexByte(script[i:], '\n')
			if end < 0 {
				end = len(script) - i
			}
			cur.WriteString(script[i : i+end])
			i += end - 1
			continue
		case strings.HasPrefix(script[i:], "/*"):
			end := strings.Index(script[i+2:], "*/")
			if end < 0 {
				cur.WriteString(script[i:])
				i = len(script)
				continue
			}
			cur.WriteString(script[i : i+2+end+2])
			i += 2 + end + 1
			continue
		}
		cur.WriteByte(ch)
	}
	flush()
	return out
}

// onlyComments reports whether s holds nothing but comments and blanks.
func onlyComments(s string) bool {
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		for strings.HasPrefix(line, "/*") {
			end := strings.Index(line, "*/")
			if end < 0 {
				line = ""
				break
			}
			line = strings.TrimSpace(line[end+2:])
		}
		if line != "" && !strings.HasPrefix(line, "--") && !strings.HasPrefix(line, "//") {
			return false
		}
	}
	return true
}

// passwordLiteral matches the password of CREATE/ALTER ROLE, which must
// not reach an error message or a log.
var passwordLiteral = regexp.MustCompile(`(?i)(PASSWORD\s*=\s*)'(?:[^']|'')*'`)

func abbreviate(stmt string) string {
	s := strings.Join(strings.Fields(stmt), " ")
	s = passwordLiteral.ReplaceAllString(s, "$1'****'")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// defaultCertsDir is $STRATA_CERTS_DIR, $STRATA_STACK_DIR/certs, or the
// nearest .stack/certs above the working directory (falling back to the
// relative path .stack/certs).
func defaultCertsDir() string {
	if d := os.Getenv("STRATA_CERTS_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("STRATA_STACK_DIR"); d != "" {
		return filepath.Join(d, "certs")
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			c := filepath.Join(dir, ".stack", "certs")
			if st, err := os.Stat(c); err == nil && st.IsDir() {
				return c
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	return filepath.Join(".stack", "certs")
}
