-- Pause ingestion: no discovery runs; the ledger is kept, so enabling it again processes
-- only what changed meanwhile.
if obj.spec == nil then
  obj.spec = {}
end
obj.spec.disabled = true
return obj
