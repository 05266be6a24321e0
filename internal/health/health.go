// Package health runs Argo CD resource health scripts the way Argo CD does, so the
// script in config/argocd can be tested against status fixtures without an Argo CD
// installation: the object goes in as the global `obj` (converted from its JSON as an
// unstructured object is), only the libraries Argo CD opens are loaded, and the script
// must return a table with a known status and a message.
package health

import (
	"context"
	"fmt"
	"time"

	lua "github.com/yuin/gopher-lua"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// Timeout is the time Argo CD gives a health script before cancelling it.
const Timeout = time.Second

// Status is what a health script returns.
type Status struct {
	Status  string
	Message string
}

// The health statuses Argo CD accepts from a script; anything else is shown as Unknown.
var knownStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

// EvaluateJSON runs script against the object encoded in objJSON.
func EvaluateJSON(script string, objJSON []byte) (Status, error) {
	// util/json turns whole numbers into int64, as the apiserver's unstructured decoding does.
	var obj map[string]any
	if err := utiljson.Unmarshal(objJSON, &obj); err != nil {
		return Status{}, fmt.Errorf("decoding the object: %w", err)
	}
	return Evaluate(script, obj)
}

// Evaluate runs script with obj as the global `obj` and returns the status it reports.
func Evaluate(script string, obj map[string]any) (Status, error) {
	// Argo CD skips the standard libraries and opens only package, base, table and a
	// restricted os: a script that uses string.* works in a plain Lua but not in Argo CD.
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), Protect: true}, lua.LString(lib.name)); err != nil {
			return Status{}, fmt.Errorf("opening the Lua %q library: %w", lib.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	L.SetContext(ctx)
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		return Status{}, fmt.Errorf("running the health script: %w", err)
	}
	ret, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return Status{}, fmt.Errorf("the health script returned %s, expected a table with status and message", L.Get(-1).Type())
	}
	var st Status
	for field, dst := range map[string]*string{"status": &st.Status, "message": &st.Message} {
		switch v := ret.RawGetString(field).(type) {
		case lua.LString:
			*dst = string(v)
		case *lua.LNilType:
		default:
			return Status{}, fmt.Errorf("the health script returned %s = %s (%s), expected a string", field, v, v.Type())
		}
	}
	if !knownStatuses[st.Status] {
		return Status{}, fmt.Errorf("the health script returned status %q, expected one of Healthy, Progressing, Degraded, Suspended, Missing, Unknown", st.Status)
	}
	return st, nil
}

// toLua converts a decoded JSON value the way Argo CD does: objects and arrays become
// tables (arrays 1-based), numbers LNumber, null nil.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := L.CreateTable(0, len(v))
		for k, item := range v {
			t.RawSetString(k, toLua(L, item))
		}
		return t
	case []any:
		t := L.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(L, item))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	default:
		return lua.LNil
	}
}
