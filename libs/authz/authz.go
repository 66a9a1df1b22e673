package authz

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // region time zones must resolve in minimal containers too

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/strata-ref/strata/libs/authn"
)

// Zones maps a region claim to the time zone its business hours follow.
var Zones = map[string]string{
	"eu": "Europe/Berlin",
	"us": "America/New_York",
}

// Resource is the thing acted on.
type Resource struct {
	Type   string // "Account", "Transfer", "Stats"
	ID     string
	Owner  string // user id of the owner, if any
	Region string // region the resource lives in, if any
}

// Request is one authorization question.
type Request struct {
	Principal authn.Principal
	Action    string
	Resource  Resource
	Now       time.Time
}

// Decision is the engine's answer and the policies behind it.
type Decision struct {
	Allowed bool
	// Policies are the ids of the policies that determined the decision:
	// the permits that allowed it, or the forbids that denied it (none when
	// denied by default).
	Policies []string
	// Errors are policies that failed to evaluate (they are skipped, so a
	// broken permit never grants access).
	Errors []string
}

// Engine evaluates one service's policy set.
type Engine struct {
	set   *cedar.PolicySet
	zones map[string]*time.Location
	log   *slog.Logger
}

// Load reads every *.cedar file in fsys. Policies are named by their
// @id annotation (required, unique), so logs and tests refer to them by name.
func Load(fsys fs.FS, log *slog.Logger) (*Engine, error) {
	files, err := fs.Glob(fsys, "*.cedar")
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("authz: no *.cedar policy files")
	}
	set := cedar.NewPolicySet()
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		parsed, err := cedar.NewPolicySetFromBytes(f, b)
		if err != nil {
			return nil, fmt.Errorf("authz: %s: %w", f, err)
		}
		for _, p := range parsed.All() {
			id, ok := p.Annotations()["id"]
			if !ok || id == "" {
				return nil, fmt.Errorf("authz: %s:%d: policy without @id(\"...\")", f, p.Position().Line)
			}
			if !set.Add(cedar.PolicyID(id), p) {
				return nil, fmt.Errorf("authz: %s: duplicate policy id %q", f, id)
			}
		}
	}
	zones := map[string]*time.Location{}
	for region, name := range Zones {
		loc, err := time.LoadLocation(name)
		if err != nil {
			return nil, fmt.Errorf("authz: zone for %s: %w", region, err)
		}
		zones[region] = loc
	}
	return &Engine{set: set, zones: zones, log: log}, nil
}

// Decide evaluates req and logs the decision with its policy ids.
func (e *Engine) Decide(ctx context.Context, req Request) Decision {
	entities, creq := e.build(req)
	ok, diag := cedar.Authorize(e.set, entities, creq)
	d := Decision{Allowed: ok == cedar.Allow}
	for _, r := range diag.Reasons {
		d.Policies = append(d.Policies, string(r.PolicyID))
	}
	for _, er := range diag.Errors {
		d.Errors = append(d.Errors, fmt.Sprintf("%s: %s", er.PolicyID, er.Message))
	}
	sort.Strings(d.Policies)
	// Typed attributes: no boxing of each value into an any on every
	// decision (several per request).
	e.log.LogAttrs(ctx, slog.LevelInfo, "authz decision", slog.Bool("allowed", d.Allowed),
		slog.String("policies", strings.Join(d.Policies, ",")), slog.String("principal", req.Principal.Subject),
		slog.String("action", req.Action), slog.String("resource", req.Resource.Type+"/"+req.Resource.ID),
		slog.Int("errors", len(d.Errors)))
	return d
}

func (e *Engine) build(req Request) (types.EntityMap, cedar.Request) {
	p := req.Principal
	user := types.NewEntityUID("User", types.String(p.Subject))
	var roles []types.EntityUID
	entities := types.EntityMap{}
	for _, r := range p.Roles {
		uid := types.NewEntityUID("Role", types.String(r))
		roles = append(roles, uid)
		entities[uid] = types.Entity{UID: uid}
	}
	entities[user] = types.Entity{UID: user, Parents: types.NewEntityUIDSet(roles...),
		Attributes: types.NewRecord(types.RecordMap{"region": types.String(p.Region)})}

	res := types.NewEntityUID(types.EntityType(req.Resource.Type), types.String(req.Resource.ID))
	attrs := types.RecordMap{"region": types.String(req.Resource.Region)}
	if req.Resource.Owner != "" {
		attrs["owner"] = types.NewEntityUID("User", types.String(req.Resource.Owner))
	}
	entities[res] = types.Entity{UID: res, Attributes: types.NewRecord(attrs)}

	region := req.Resource.Region
	if region == "" {
		region = p.Region
	}
	minutes := int64(-1) // unknown region: no business hours match
	if loc, ok := e.zones[region]; ok {
		local := req.Now.In(loc)
		minutes = int64(local.Hour()*60 + local.Minute())
	}
	return entities, cedar.Request{
		Principal: user,
		Action:    types.NewEntityUID("Action", types.String(req.Action)),
		Resource:  res,
		Context: types.NewRecord(types.RecordMap{
			"local_minutes": types.Long(minutes),
			"actor":         types.String(p.Actor),
		}),
	}
}
