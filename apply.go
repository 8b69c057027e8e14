package iam

import "strings"

// apply changes the state by one event. Events are facts: apply never fails
// and never judges; Decide has already checked everything.
func (s *State) apply(ev Event, touch Touch) {
	switch e := ev.(type) {
	case Heartbeat:
	case RealmCreated:
		s.realms[e.Realm] = &Realm{
			ID: e.Realm, Name: e.Name,
			Identities: map[string]*Identity{}, Groups: map[string]*Group{}, Policies: map[string]*Policy{},
			Projects: map[string]*Project{}, Resources: map[string]*ResourcePlacement{}, emails: map[string]string{},
			roleCache:   roleStatementsFor(e.Realm),
			Invitations: map[string]*Invitation{}, authCodes: map[string]string{}, resetTokens: map[string]string{}, invitationTokens: map[string]string{},
		}
		touch(realmKey(e.Realm))
	case IdentityCreated:
		r := s.realms[e.Realm]
		r.Identities[e.ID] = &Identity{
			ID: e.ID, Kind: e.Kind, Status: StatusActive, Email: e.Email, Name: e.Name,
			PasswordHash: e.PasswordHash, RedirectURIs: e.RedirectURIs, Owner: e.Owner,
			Groups: set{}, Roles: set{}, Policies: set{}, Projects: set{},
			Credentials: map[string]Credential{}, APIKeys: map[string]string{},
			EmailIndex: e.EmailIndex, Sealed: e.Sealed, AuthCodes: map[string]AuthCode{}, DisabledAPIKeys: set{},
		}
		if e.Email != "" {
			r.emails[strings.ToLower(e.Email)] = e.ID
		}
		if e.EmailIndex != "" {
			r.emails[e.EmailIndex] = e.ID
		}
		touch(identityKey(e.Realm, e.ID))
	case IdentityStatusChanged:
		id := s.realms[e.Realm].Identities[e.ID]
		id.Status, id.SelfDeactivated = e.Status, e.Status == StatusDeactivated && e.BySelf
		touch(identityKey(e.Realm, e.ID))
	case IdentityDeleted:
		r := s.realms[e.Realm]
		id := r.Identities[e.ID]
		if r.emails[strings.ToLower(id.Email)] == e.ID {
			delete(r.emails, strings.ToLower(id.Email))
		}
		r.forgetAuth(id, touch)
		// Keep a tombstone without personal data, so the id is never reused.
		r.Identities[e.ID] = &Identity{ID: e.ID, Kind: id.Kind, Status: StatusDeleted,
			Groups: set{}, Roles: set{}, Policies: set{}, Projects: set{},
			Credentials: map[string]Credential{}, APIKeys: map[string]string{},
			AuthCodes: map[string]AuthCode{}, DisabledAPIKeys: set{}}
		touch(identityKey(e.Realm, e.ID))
	case CredentialAdded:
		s.realms[e.Realm].Identities[e.App].Credentials[e.CredentialID] = Credential{ClientID: e.ClientID, SecretHash: e.SecretHash}
		s.clients[e.ClientID] = credentialRef{e.Realm, e.App, e.CredentialID}
		touch(edgeKey(e.Realm, edgeCredential, e.App, e.CredentialID))
	case CredentialRemoved:
		app := s.realms[e.Realm].Identities[e.App]
		delete(s.clients, app.Credentials[e.CredentialID].ClientID)
		delete(app.Credentials, e.CredentialID)
		touch(edgeKey(e.Realm, edgeCredential, e.App, e.CredentialID))
	case APIKeyAdded:
		s.realms[e.Realm].Identities[e.App].APIKeys[e.KeyID] = e.KeyHash
		s.apiKeys[e.KeyID] = credentialRef{e.Realm, e.App, e.KeyID}
		touch(edgeKey(e.Realm, edgeAPIKey, e.App, e.KeyID))
	case APIKeyRemoved:
		delete(s.realms[e.Realm].Identities[e.App].APIKeys, e.KeyID)
		if app := s.realms[e.Realm].Identities[e.App]; app.DisabledAPIKeys.has(e.KeyID) {
			delete(app.DisabledAPIKeys, e.KeyID)
			touch(edgeKey(e.Realm, edgeAPIKeyDisabled, e.App, e.KeyID))
		}
		delete(s.apiKeys, e.KeyID)
		touch(edgeKey(e.Realm, edgeAPIKey, e.App, e.KeyID))
	case GroupCreated:
		s.realms[e.Realm].Groups[e.ID] = &Group{ID: e.ID, Name: e.Name, Members: set{}, Policies: set{}, Projects: set{}}
		touch(groupKey(e.Realm, e.ID))
	case MemberAdded:
		r := s.realms[e.Realm]
		r.Groups[e.Group].Members.add(e.Identity)
		r.Identities[e.Identity].Groups.add(e.Group)
		touch(edgeKey(e.Realm, edgeMember, e.Group, e.Identity))
	case MemberRemoved:
		r := s.realms[e.Realm]
		delete(r.Groups[e.Group].Members, e.Identity)
		delete(r.Identities[e.Identity].Groups, e.Group)
		touch(edgeKey(e.Realm, edgeMember, e.Group, e.Identity))
	case RoleGranted:
		s.realms[e.Realm].Identities[e.Identity].Roles.add(e.Role)
		touch(edgeKey(e.Realm, edgeRole, e.Identity, e.Role))
	case RoleRevoked:
		delete(s.realms[e.Realm].Identities[e.Identity].Roles, e.Role)
		touch(edgeKey(e.Realm, edgeRole, e.Identity, e.Role))
	case PolicyCreated:
		s.realms[e.Realm].Policies[e.ID] = &Policy{ID: e.ID, Name: e.Name, Statements: e.Statements, AttachedTo: set{}, InProjects: set{}}
		touch(policyKey(e.Realm, e.ID))
	case PolicyAttached:
		r := s.realms[e.Realm]
		r.Policies[e.Policy].AttachedTo.add(e.Target)
		if g := r.Groups[e.Target]; g != nil {
			g.Policies.add(e.Policy)
		} else {
			r.Identities[e.Target].Policies.add(e.Policy)
		}
		touch(edgeKey(e.Realm, edgeAttachment, e.Target, e.Policy))
	case PolicyDetached:
		r := s.realms[e.Realm]
		delete(r.Policies[e.Policy].AttachedTo, e.Target)
		if g := r.Groups[e.Target]; g != nil {
			delete(g.Policies, e.Policy)
		} else if id := r.Identities[e.Target]; id != nil {
			delete(id.Policies, e.Policy)
		}
		touch(edgeKey(e.Realm, edgeAttachment, e.Target, e.Policy))
	case ProjectCreated:
		s.realms[e.Realm].Projects[e.ID] = &Project{ID: e.ID, Name: e.Name, Members: map[string][]string{}, Resources: map[string]Relation{}}
		touch(projectKey(e.Realm, e.ID))
	case ProjectMemberSet:
		r := s.realms[e.Realm]
		p := r.Projects[e.Project]
		old, had := p.Members[e.Member]
		p.Members[e.Member] = append([]string(nil), e.Policies...)
		if had {
			r.unusePolicies(p.ID, old)
		} else if g := r.Groups[e.Member]; g != nil {
			g.Projects.add(p.ID)
			p.groups++
		} else {
			r.Identities[e.Member].Projects.add(p.ID)
		}
		for _, pol := range e.Policies {
			r.Policies[pol].InProjects.add(p.ID)
		}
		touch(edgeKey(e.Realm, edgeProjectMember, e.Project, e.Member))
	case ProjectMemberRemoved:
		r := s.realms[e.Realm]
		p := r.Projects[e.Project]
		old := p.Members[e.Member]
		delete(p.Members, e.Member)
		r.unusePolicies(p.ID, old)
		if g := r.Groups[e.Member]; g != nil {
			delete(g.Projects, p.ID)
			p.groups--
		} else if id := r.Identities[e.Member]; id != nil {
			delete(id.Projects, p.ID)
		}
		touch(edgeKey(e.Realm, edgeProjectMember, e.Project, e.Member))
	case ProjectResourceAdded:
		r := s.realms[e.Realm]
		r.Projects[e.Project].Resources[e.HRN] = e.Relation
		pl := r.Resources[e.HRN]
		if pl == nil {
			pl = &ResourcePlacement{Links: set{}}
			r.Resources[e.HRN] = pl
		}
		if e.Relation == RelationHome {
			pl.Home = e.Project
		} else {
			pl.Links.add(e.Project)
		}
		touch(edgeKey(e.Realm, edgeProjectResource, e.Project, e.HRN))
	case ProjectResourceRemoved:
		r := s.realms[e.Realm]
		delete(r.Projects[e.Project].Resources, e.HRN)
		if pl := r.Resources[e.HRN]; pl != nil {
			if pl.Home == e.Project {
				pl.Home = ""
			}
			delete(pl.Links, e.Project)
			if pl.Home == "" && len(pl.Links) == 0 {
				delete(r.Resources, e.HRN)
			}
		}
		touch(edgeKey(e.Realm, edgeProjectResource, e.Project, e.HRN))
	default:
		s.applyAuth(ev, touch)
	}
}

// unusePolicies forgets that project uses policies, unless a member of the
// project (as it is now) still uses them.
func (r *Realm) unusePolicies(project string, policies []string) {
	p := r.Projects[project]
	for _, pol := range policies {
		still := false
		for _, other := range p.Members {
			for _, o := range other {
				still = still || o == pol
			}
		}
		if !still {
			if rp := r.Policies[pol]; rp != nil {
				delete(rp.InProjects, project)
			}
		}
	}
}
