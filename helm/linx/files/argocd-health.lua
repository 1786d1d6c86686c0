-- Argo CD health check for netfilter.linx.dev/FirewallRuleset, from the
-- status the linx operator writes (kstatus conditions Ready, Reconciling,
-- Stalled, and observedGeneration; older operators: Valid and Applied).
hs = {}
local status = obj.status
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the linx operator to validate the resource"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the linx operator to validate generation " .. generation
  return hs
end
local conditions = {}
for _, c in ipairs(status.conditions or {}) do
  conditions[c.type] = c
end
local function is(type, value)
  local c = conditions[type]
  return c ~= nil and c.status == value
end
local function message(type)
  local c = conditions[type]
  if c == nil or c.message == nil then
    return ""
  end
  return c.message
end
if is("Stalled", "True") then
  hs.status = "Degraded"
  hs.message = message("Stalled")
elseif is("Ready", "True") then
  hs.status = "Healthy"
  hs.message = message("Ready")
elseif is("Reconciling", "True") then
  hs.status = "Progressing"
  hs.message = message("Reconciling")
elseif is("Valid", "False") then
  hs.status = "Degraded"
  hs.message = message("Valid")
elseif is("Applied", "False") then
  hs.status = "Degraded"
  hs.message = message("Applied")
elseif is("Applied", "True") then
  hs.status = "Healthy"
  hs.message = message("Applied")
else
  hs.status = "Progressing"
  hs.message = "Waiting for node agents to apply generation " .. status.observedGeneration
end
return hs
