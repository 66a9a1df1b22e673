// Package authz is Strata's policy engine: RBAC and ABAC in one Cedar
// policy set, evaluated in the service that owns the resource, on the
// originating user's identity (authn.Principal).
//
// The entity model a policy sees:
//
//	principal  User::"<sub>"    parents: Role::"<role>" for each role claim
//	                             attrs:   region (string)
//	action     Action::"<name>"  e.g. "read_account", "transfer", "deposit"
//	resource   <Type>::"<id>"   attrs:   owner (User entity), region (string)
//	context    local_minutes     minutes since midnight in the resource's
//	                             region (the principal's when the resource
//	                             has none), from Request.Now
//	           actor             the service acting for the user ("" if none)
//
// RBAC is `principal in Role::"teller"`; ABAC is a when-clause on
// attributes and context. Deny is the default; any forbid overrides every
// permit. Each policy names itself with an @id("...") annotation, and every
// decision is logged with the ids of the policies that decided it, so
// "why was this allowed?" has an answer in the log.
//
// The current time comes in the request, never from the clock inside the
// engine, so policy tests are deterministic at 08:59:59 and 09:00:00.
package authz
