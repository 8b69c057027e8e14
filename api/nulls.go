package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	iam "github.com/iam-project/iam"
)

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// refuseNulls finds the first JSON null in body that v's type cannot tell
// from an absent field. encoding/json leaves such a field as it was, so
// {"scope": null} would pass for no scope while the contract says a scope
// is a string. The fields that give null a meaning (clearing a default)
// are json.RawMessage and read it themselves.
func refuseNulls(body []byte, v any) error {
	if !bytes.Contains(body, []byte("null")) {
		return nil // the common case: no parse beyond decodeStrict's
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil // decodeStrict has already refused what does not parse
	}
	return nullIn(doc, reflect.TypeOf(v), "")
}

func nullIn(doc any, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessageType || t.Kind() == reflect.Interface {
		return nil
	}
	switch doc := doc.(type) {
	case nil:
		return iam.FieldErrorf(path, "must not be null")
	case map[string]any:
		for key, value := range doc {
			var field reflect.Type
			switch t.Kind() {
			case reflect.Struct:
				f, ok := jsonField(t, key)
				if !ok {
					continue // unknown fields are decodeStrict's to refuse
				}
				field = f.Type
			case reflect.Map:
				field = t.Elem()
			default:
				continue
			}
			if err := nullIn(value, field, joinField(path, key)); err != nil {
				return err
			}
		}
	case []any:
		if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
			return nil
		}
		for i, value := range doc {
			if err := nullIn(value, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// jsonField finds the field encoding/json decodes key into: its tag name or
// Go name, exactly or else case-insensitively, embedded structs included.
func jsonField(t reflect.Type, key string) (reflect.StructField, bool) {
	var folded reflect.StructField
	found := false
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous && f.Type.Kind() == reflect.Struct {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if name == key {
			return f, true
		}
		if !found && strings.EqualFold(name, key) {
			folded, found = f, true
		}
	}
	return folded, found
}

func joinField(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
