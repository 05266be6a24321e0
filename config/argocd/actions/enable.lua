-- Resume ingestion after disable.
if obj.spec == nil then
  obj.spec = {}
end
obj.spec.disabled = false
return obj
