package auth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/iam-project/iam/api/auth"
)

func TestHash_RoundTrip(t *testing.T) {
	p := auth.LowCostHashParams()
	phc, err := auth.Hash("s3cret", p)
	if err != nil {
		t.Fatal(err)
	}
	if want := "$argon2id$v=19$m=64,t=1,p=1$"; !strings.HasPrefix(phc, want) {
		t.Fatalf("got %q, want prefix %q", phc, want)
	}
	for _, tc := range []struct {
		secret string
		want   bool
	}{
		{"s3cret", true},
		{"s3cret ", false},
		{"S3cret", false},
		{"", false},
	} {
		ok, err := auth.Verify(tc.secret, phc)
		if err != nil || ok != tc.want {
			t.Errorf("Verify(%q) = %v, %v; want %v, nil", tc.secret, ok, err, tc.want)
		}
	}
	again, _ := auth.Hash("s3cret", p)
	if again == phc {
		t.Errorf("two hashes of the same secret are equal; want distinct salts")
	}
}

func TestHash_Default(t *testing.T) {
	phc, err := auth.Hash("pw", auth.DefaultHashParams())
	if err != nil {
		t.Fatal(err)
	}
	if want := "$argon2id$v=19$m=19456,t=2,p=1$"; !strings.HasPrefix(phc, want) {
		t.Fatalf("got %q, want prefix %q", phc, want)
	}
	if ok, err := auth.Verify("pw", phc); !ok || err != nil {
		t.Fatalf("got %v, %v; want true, nil", ok, err)
	}
}

// TestHash_ParamChange checks that hashes made under old parameters still
// verify after the parameters change, and that NeedsRehash spots them.
func TestHash_ParamChange(t *testing.T) {
	old := auth.LowCostHashParams()
	cur := auth.HashParams{Time: 2, MemoryKiB: 128, Threads: 2, KeyLen: 64, SaltLen: 32}
	oldPHC, _ := auth.Hash("pw", old)
	curPHC, err := auth.Hash("pw", cur)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		phc  string
		p    auth.HashParams
	}{{"old", oldPHC, old}, {"current", curPHC, cur}} {
		t.Run(tc.name, func(t *testing.T) {
			if ok, err := auth.Verify("pw", tc.phc); !ok || err != nil {
				t.Errorf("Verify: got %v, %v; want true, nil", ok, err)
			}
			got, err := auth.ParseHash(tc.phc)
			if err != nil || got != tc.p {
				t.Errorf("ParseHash: got %+v, %v; want %+v", got, err, tc.p)
			}
			need, err := auth.NeedsRehash(tc.phc, cur)
			if want := tc.p != cur; need != want || err != nil {
				t.Errorf("NeedsRehash: got %v, %v; want %v", need, err, want)
			}
		})
	}
}

func TestHash_InvalidParams(t *testing.T) {
	for _, p := range []auth.HashParams{
		{},
		{Time: 1, MemoryKiB: 64, Threads: 0, KeyLen: 32, SaltLen: 16},
		{Time: 1, MemoryKiB: 7, Threads: 1, KeyLen: 32, SaltLen: 16},
		{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 4},
		{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 8, SaltLen: 16},
		{Time: 1, MemoryKiB: auth.MaxHashMemoryKiB + 1, Threads: 1, KeyLen: 32, SaltLen: 16},
		{Time: auth.MaxHashTime + 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16},
	} {
		if phc, err := auth.Hash("x", p); err == nil {
			t.Errorf("Hash(%+v) = %q, nil; want an error", p, phc)
		}
	}
}

func TestVerify_Malformed(t *testing.T) {
	good, _ := auth.Hash("pw", auth.LowCostHashParams())
	f := strings.Split(good, "$") // "", argon2id, v=19, params, salt, hash
	join := func(parts ...string) string { return strings.Join(parts, "$") }
	for _, tc := range []struct{ name, phc string }{
		{"empty", ""},
		{"dollar", "$"},
		{"no leading dollar", strings.TrimPrefix(good, "$")},
		{"argon2i", join("", "argon2i", f[2], f[3], f[4], f[5])},
		{"argon2d", join("", "argon2d", f[2], f[3], f[4], f[5])},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"version 16", join("", "argon2id", "v=16", f[3], f[4], f[5])},
		{"no version", join("", "argon2id", f[3], f[4], f[5])},
		{"extra field", good + "$x"},
		{"keyid param", join("", "argon2id", f[2], f[3]+",keyid=abc", f[4], f[5])},
		{"reordered params", join("", "argon2id", f[2], "t=1,m=64,p=1", f[4], f[5])},
		{"leading zero", join("", "argon2id", f[2], "m=064,t=1,p=1", f[4], f[5])},
		{"plus sign", join("", "argon2id", f[2], "m=+64,t=1,p=1", f[4], f[5])},
		{"negative", join("", "argon2id", f[2], "m=-64,t=1,p=1", f[4], f[5])},
		{"overflow", join("", "argon2id", f[2], "m=4294967296,t=1,p=1", f[4], f[5])},
		{"t=0", join("", "argon2id", f[2], "m=64,t=0,p=1", f[4], f[5])},
		{"p=0", join("", "argon2id", f[2], "m=64,t=1,p=0", f[4], f[5])},
		{"p=256", join("", "argon2id", f[2], "m=4096,t=1,p=256", f[4], f[5])},
		{"m below 8p", join("", "argon2id", f[2], "m=8,t=1,p=2", f[4], f[5])},
		{"m too big", join("", "argon2id", f[2], "m=4294967295,t=1,p=1", f[4], f[5])},
		{"t too big", join("", "argon2id", f[2], "m=64,t=4294967295,p=1", f[4], f[5])},
		{"salt not base64", join("", "argon2id", f[2], f[3], "!!!!", f[5])},
		{"salt padded", join("", "argon2id", f[2], f[3], f[4]+"==", f[5])},
		{"salt urlsafe", join("", "argon2id", f[2], f[3], "-_-_-_-_-_-_", f[5])},
		{"salt too short", join("", "argon2id", f[2], f[3], "AAAA", f[5])},
		{"empty salt", join("", "argon2id", f[2], f[3], "", f[5])},
		{"empty hash", join("", "argon2id", f[2], f[3], f[4], "")},
		{"hash too short", join("", "argon2id", f[2], f[3], f[4], "AAAAAAAA")},
		{"hash non-canonical", join("", "argon2id", f[2], f[3], f[4], f[5][:len(f[5])-1]+"B")},
		{"too long", good + strings.Repeat("A", 2000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := auth.Verify("pw", tc.phc)
			if ok || !errors.Is(err, auth.ErrMalformedHash) {
				t.Errorf("Verify(%q) = %v, %v; want false, ErrMalformedHash", tc.phc, ok, err)
			}
			if _, err := auth.ParseHash(tc.phc); !errors.Is(err, auth.ErrMalformedHash) {
				t.Errorf("ParseHash: got %v, want ErrMalformedHash", err)
			}
		})
	}
}

// FuzzVerify checks that the PHC parser never panics, agrees with itself
// (ParseHash and Verify accept the same strings) and accepts nothing it
// would not produce. Verify is only run for cheap parameters, so that the
// fuzzer does not spend its time (or 1 GiB) in argon2id.
func FuzzVerify(f *testing.F) {
	good, _ := auth.Hash("pw", auth.LowCostHashParams())
	f.Add("pw", good)
	f.Add("pw", "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$RdescudvJCsgt3ub+b+dWRWJTmaaJObG")
	f.Add("", "$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("x", "$argon2id$v=19$m=64,t=1,p=1,keyid=x$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("x", "$argon2i$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("x", "$argon2id$v=16$m=64,t=1,p=1$$")
	f.Add("x", "$argon2id$$$$")
	f.Add("x", "$$$$$$$$")
	f.Add("x", "")
	f.Fuzz(func(t *testing.T, secret, phc string) {
		p, perr := auth.ParseHash(phc)
		if perr != nil {
			if !errors.Is(perr, auth.ErrMalformedHash) {
				t.Fatalf("ParseHash error %v does not wrap ErrMalformedHash", perr)
			}
		} else if err := p.Validate(); err != nil {
			t.Fatalf("ParseHash accepted %q with invalid params %+v: %v", phc, p, err)
		}
		if perr == nil && (p.MemoryKiB > 1024 || p.Time > 4) {
			return
		}
		ok, err := auth.Verify(secret, phc)
		if (err == nil) != (perr == nil) {
			t.Fatalf("Verify error %v, ParseHash error %v; want both or neither", err, perr)
		}
		if err != nil && ok {
			t.Fatalf("Verify returned true with error %v", err)
		}
	})
}
