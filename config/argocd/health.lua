-- Argo CD health check for the dataimport.avon.ai kinds S3Source and IngestionQuota.
--
-- Argo CD runs it with the live object in the global `obj` and expects a table
-- { status = ..., message = ... } back. Only the base, table and a safe os library are
-- loaded (no string library), so this script uses none of string.*.
--
-- The operator's conditions follow kstatus: Ready, Reconciling, Stalled.
--   Suspended   S3Source with spec.disabled
--   Progressing the operator has not acted on this generation yet, a discovery is running
--               (Reconciling=True), or there is no Ready condition yet
--   Degraded    Stalled=True (only a change to the spec or a Secret helps) or Ready=False
--   Healthy     Ready=True
--
-- Keep this file the single copy: argocd-cm-patch.yaml embeds it verbatim, and
-- internal/testsupport/health checks that the two are identical.

local function findCondition(conditions, conditionType)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

-- "Reason: message", so the reason a runbook keys on is visible in the Argo CD UI.
local function describe(c)
  local reason = c.reason or ""
  local message = c.message or ""
  if reason == "" then
    return message
  end
  if message == "" then
    return reason
  end
  return reason .. ": " .. message
end

local function hasStatus(c, status)
  return c ~= nil and c.status == status
end

if obj.kind == "S3Source" and obj.spec ~= nil and obj.spec.disabled == true then
  return { status = "Suspended", message = "Ingestion is paused (spec.disabled); re-enabling processes only what changed meanwhile" }
end

local status = obj.status or {}
local conditions = status.conditions
local generation = (obj.metadata or {}).generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  return { status = "Progressing", message = "Waiting for the operator to act on generation " .. generation }
end

local stalled = findCondition(conditions, "Stalled")
local ready = findCondition(conditions, "Ready")
local reconciling = findCondition(conditions, "Reconciling")
if hasStatus(stalled, "True") then
  return { status = "Degraded", message = describe(stalled) }
end
if hasStatus(ready, "False") then
  return { status = "Degraded", message = describe(ready) }
end
if hasStatus(reconciling, "True") then
  return { status = "Progressing", message = describe(reconciling) }
end
if hasStatus(ready, "True") then
  return { status = "Healthy", message = describe(ready) }
end
if ready ~= nil then
  return { status = "Progressing", message = describe(ready) }
end
return { status = "Progressing", message = "Waiting for the operator to report the Ready condition" }
