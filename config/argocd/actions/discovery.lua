-- Argo CD resource actions for S3Source: which of refresh, disable and enable to offer.
--
-- Argo CD runs it with the live object in the global `obj` and expects a table of
-- action name -> { disabled = bool }. Each action's script is <name>.lua beside this one;
-- argocd-cm-patch.yaml embeds them verbatim (internal/testsupport/health checks it).
--   refresh  ask for a discovery now (not while the source is disabled: nothing would run)
--   disable  pause ingestion (spec.disabled: true)
--   enable   resume it
-- With automated sync and selfHeal, Argo CD reverts disable/enable to what Git says: change
-- spec.disabled in Git for a lasting pause.
local actions = {}
local disabled = obj.spec ~= nil and obj.spec.disabled == true
actions["refresh"] = { ["disabled"] = disabled }
actions["disable"] = { ["disabled"] = disabled }
actions["enable"] = { ["disabled"] = not disabled }
return actions
