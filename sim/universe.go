package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/api/client"
)

// universe is what the workload writes about and checks: resources, one
// policy allowing "read" on each, groups holding those policies, and apps
// (the subjects; apps because an app checks its own access with its own
// token, which a region answers from its replica alone — checking another
// identity needs a management permission judged at the log's head).
type universe struct {
	realm     string
	resources []string // HRNs
	policies  []string // policy id per resource
	groups    []string // group ids
	groupRes  []int    // the resource each group's policy allows
	apps      []*app
	byRegion  map[string][]*app
	setupSeq  uint64 // position after setup
}

// app is one subject and, for its owning writer, its exact state.
type app struct {
	id     string
	region string // home of the writer that owns it
	token  string // its access token

	// Owned by one writer goroutine.
	direct  map[int]bool // resources whose policy is attached directly
	groups  map[int]bool // groups it is a member of
	active  bool
	retired bool // an unacknowledged write may or may not have landed

	probing atomic.Bool // its revoke is being measured: its writer leaves it alone
}

// allowed is the app's access to resource r as its writer knows it.
func (u *universe) allowed(a *app, r int) bool {
	if !a.active {
		return false
	}
	if a.direct[r] {
		return true
	}
	for g := range a.groups {
		if u.groupRes[g] == r {
			return true
		}
	}
	return false
}

// setup creates the universe through the hub's API as the bootstrap admin,
// with up to 8 writes in flight, and returns it once every region has
// applied it.
func setup(ctx context.Context, s Scenario, c *cluster, p *prober, admin *client.Client, tokenURL string) (*universe, error) {
	w := s.Workload
	u := &universe{realm: c.realm, byRegion: map[string][]*app{}}
	var mu sync.Mutex
	note := func(tok string) {
		if seq, ok := parseToken(tok); ok {
			mu.Lock()
			u.setupSeq = max(u.setupSeq, seq)
			mu.Unlock()
		}
	}
	for i := range w.Resources {
		hrn := fmt.Sprintf("hrn:here:data::%s:sim-resource-%d", c.realm, i)
		pol, err := admin.CreatePolicy(ctx, fmt.Sprintf("sim-read-%d", i),
			client.Statement{Effect: "allow", Actions: []string{"read"}, Resources: []string{hrn}})
		if err != nil {
			return nil, fmt.Errorf("setup: create policy: %w", err)
		}
		note(pol.ConsistencyToken)
		u.resources, u.policies = append(u.resources, hrn), append(u.policies, pol.ID)
	}
	for i := range w.Groups {
		g, err := admin.CreateGroup(ctx, fmt.Sprintf("sim-group-%d", i))
		if err != nil {
			return nil, fmt.Errorf("setup: create group: %w", err)
		}
		note(g.ConsistencyToken)
		r := i % w.Resources
		wr, err := admin.AttachPolicy(ctx, u.policies[r], g.ID)
		if err != nil {
			return nil, fmt.Errorf("setup: attach group policy: %w", err)
		}
		note(wr.ConsistencyToken)
		u.groups, u.groupRes = append(u.groups, g.ID), append(u.groupRes, r)
	}
	// Apps, in parallel: create, add a credential, take a token, and give
	// half of them one direct grant so that revokes have work from the start.
	type job struct {
		region string
		i      int
		grant  int // resource to grant, or -1
	}
	rng := rand.New(rand.NewPCG(uint64(s.Seed), 0x5e7))
	var jobs []job
	for _, region := range s.Regions {
		for i := range w.UsersPerRegion {
			g := -1
			if rng.IntN(2) == 0 {
				g = rng.IntN(w.Resources)
			}
			jobs = append(jobs, job{region, i, g})
		}
	}
	apps := make([]*app, len(jobs))
	next := make(chan int)
	errc := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				j := jobs[k]
				a, err := setupApp(ctx, admin, tokenURL, fmt.Sprintf("sim-%s-%d", j.region, j.i), note)
				if err == nil && j.grant >= 0 {
					var wr client.WriteResult
					if wr, err = admin.AttachPolicy(ctx, u.policies[j.grant], a.id); err == nil {
						a.direct[j.grant] = true
						note(wr.ConsistencyToken)
					}
				}
				if err != nil {
					errc <- err
					return
				}
				a.region = j.region
				apps[k] = a
			}
		}()
	}
	var err error
feed:
	for k := range jobs {
		select {
		case next <- k:
		case err = <-errc:
			break feed
		}
	}
	close(next)
	wg.Wait()
	close(errc)
	if err == nil {
		err = <-errc
	}
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	for _, a := range apps {
		u.apps = append(u.apps, a)
		u.byRegion[a.region] = append(u.byRegion[a.region], a)
	}
	// The apps' tokens carry their issue positions; wait until every
	// region has applied the whole setup.
	for _, rn := range c.regions {
		if err := waitApplied(ctx, p, rn.URL, u.apps, u.resources[0], u.setupSeq, 60*time.Second); err != nil {
			return nil, fmt.Errorf("setup: region %s: %w", rn.Name, err)
		}
	}
	return u, nil
}

func setupApp(ctx context.Context, admin *client.Client, tokenURL, name string, note func(string)) (*app, error) {
	a, err := admin.CreateApp(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("create app: %w", err)
	}
	note(a.ConsistencyToken)
	cred, err := admin.AddCredential(ctx, a.ID)
	if err != nil {
		return nil, fmt.Errorf("add credential: %w", err)
	}
	note(cred.ConsistencyToken)
	tok, err := client.ClientCredentials(ctx, tokenURL, cred.ClientID, cred.ClientSecret, "", nil).Token()
	if err != nil {
		return nil, fmt.Errorf("token of app %s: %w", a.ID, err)
	}
	return &app{id: a.ID, token: tok.AccessToken, direct: map[int]bool{}, groups: map[int]bool{}, active: true}, nil
}

// waitApplied polls an at_least_as_fresh check at base until the region
// has applied seq, or limit passes. It asks as the first of apps whose
// token is not refused (a deactivated app's is).
func waitApplied(ctx context.Context, p *prober, base string, apps []*app, resource string, seq uint64, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	k := 0
	_, err := poll(ctx, 10*time.Millisecond, nil, func() error {
		a, err := p.check(ctx, base, apps[k%len(apps)].token, resource, iam.AtLeastAsFresh, seq, 2*time.Second)
		if err != nil {
			return err
		}
		if a.Status == 401 {
			k++
		}
		if a.Status != 200 {
			return fmt.Errorf("check at %s: %d %s", formatToken(seq), a.Status, a.Code)
		}
		return nil
	})
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("not at %s within %s", formatToken(seq), limit)
	}
	return err
}
