-- Ask the operator for a discovery now: it runs one when the annotation's value changes
-- (at most once per IngestionQuota spec.refreshCooldown). The value is the current UTC time.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["dataimport.avon.ai/refresh-requested-at"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
