// Package health runs Argo CD resource health and action scripts the way Argo CD does, so
// the scripts in config/argocd can be tested against status fixtures without an Argo CD
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
	val, done, err := runScript(script, "health", obj)
	if err != nil {
		return Status{}, err
	}
	defer done()
	ret, ok := val.(*lua.LTable)
	if !ok {
		return Status{}, fmt.Errorf("the health script returned %s, expected a table with status and message", val.Type())
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

// runScript runs script in a fresh state (newState) and returns the value it returned;
// call done once that value has been read.
func runScript(script, what string, obj map[string]any) (val lua.LValue, done func(), err error) {
	L, cancel, err := newState(obj)
	if err != nil {
		return nil, nil, err
	}
	done = func() {
		cancel()
		L.Close()
	}
	if err := L.DoString(script); err != nil {
		done()
		return nil, nil, fmt.Errorf("running the %s script: %w", what, err)
	}
	return L.Get(-1), done, nil
}

// newState is a Lua state as Argo CD prepares one for a health or action script: only the
// package, base and table libraries, a safe os (clock, date, difftime, time: no exec,
// files or environment), the object as the global `obj`, and Timeout to finish.
func newState(obj map[string]any) (*lua.LState, context.CancelFunc, error) {
	// Argo CD skips the standard libraries: a script that uses string.* works in a plain
	// Lua but not in Argo CD.
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, lua.OpenOs},
	} {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), Protect: true}, lua.LString(lib.name)); err != nil {
			L.Close()
			return nil, nil, fmt.Errorf("opening the Lua %q library: %w", lib.name, err)
		}
	}
	if os, ok := L.GetGlobal(lua.OsLibName).(*lua.LTable); ok {
		safe := L.NewTable()
		for _, fn := range []string{"clock", "date", "difftime", "time"} {
			safe.RawSetString(fn, os.RawGetString(fn))
		}
		L.SetGlobal(lua.OsLibName, safe)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	L.SetContext(ctx)
	L.SetGlobal("obj", toLua(L, obj))
	return L, cancel, nil
}

// Action is what an action's discovery script reports for it.
type Action struct {
	Disabled bool
}

// Discover runs an Argo CD discovery.lua against obj and returns the actions it offers.
func Discover(script string, obj map[string]any) (map[string]Action, error) {
	val, done, err := runScript(script, "discovery", obj)
	if err != nil {
		return nil, err
	}
	defer done()
	ret, ok := val.(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("the discovery script returned %s, expected a table of actions", val.Type())
	}
	actions := map[string]Action{}
	var bad error
	ret.ForEach(func(k, v lua.LValue) {
		t, ok := v.(*lua.LTable)
		if k.Type() != lua.LTString || !ok {
			bad = fmt.Errorf("the discovery script returned %s = %s, expected a name and a table", k, v.Type())
			return
		}
		actions[k.String()] = Action{Disabled: lua.LVAsBool(t.RawGetString("disabled"))}
	})
	return actions, bad
}

// RunAction runs an Argo CD action.lua against obj and returns the object it returns,
// which Argo CD then patches into the cluster.
func RunAction(script string, obj map[string]any) (map[string]any, error) {
	val, done, err := runScript(script, "action", obj)
	if err != nil {
		return nil, err
	}
	defer done()
	ret, ok := fromLua(val).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the action script returned %s, expected the object", val.Type())
	}
	return ret, nil
}

// fromLua converts back: a table whose keys are 1..n becomes an array, any other table an
// object, numbers int64 when whole (as JSON integers decode).
func fromLua(v lua.LValue) any {
	switch v := v.(type) {
	case *lua.LTable:
		if n := v.MaxN(); n > 0 && n == v.Len() {
			arr := make([]any, 0, n)
			for i := 1; i <= n; i++ {
				arr = append(arr, fromLua(v.RawGetInt(i)))
			}
			return arr
		}
		m := map[string]any{}
		v.ForEach(func(k, item lua.LValue) { m[k.String()] = fromLua(item) })
		return m
	case lua.LString:
		return string(v)
	case lua.LBool:
		return bool(v)
	case lua.LNumber:
		if f := float64(v); f == float64(int64(f)) {
			return int64(f)
		}
		return float64(v)
	default:
		return nil
	}
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
