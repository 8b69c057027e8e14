// Package auth holds the credential cryptography the HTTP server uses:
// argon2id hashing of passwords, client secrets and API keys (Hash, Verify,
// VerifyCache); random secrets and ids (NewSecret, NewID); ES256 signing keys
// with rotation and their JWKS (KeySet); access-token signing and verification
// (KeySet.Sign, KeySet.Verify); and PKCE (VerifyPKCE, S256Challenge).
//
// Its one piece of I/O is the sealed signing-key file of a data directory
// (LoadSigningKeys, KeyFile); storing hashes is the caller's job. It
// depends only on the standard library, golang.org/x/crypto/argon2 and
// github.com/golang-jwt/jwt/v5 (which is used nowhere else).
package auth
