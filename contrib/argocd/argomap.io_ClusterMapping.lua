-- Argo CD health of an argomap ClusterMapping
-- (argocd-cm key resource.customizations.health.argomap.io_ClusterMapping).
-- Progressing until argomap has stated this generation (or while its instance has not had a
-- first check), Healthy when Linked, Degraded with the state's message otherwise.
local hs = {}

local status = obj.status
if status == nil or status.state == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for argomap"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for argomap to check generation " .. generation
  return hs
end
local message = ""
if status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type == "Ready" then
      message = c.message or ""
    end
  end
end
if status.state == "Linked" then
  hs.status = "Healthy"
  hs.message = message
  return hs
end
if status.state == "Pending" then
  hs.status = "Progressing"
  hs.message = message
  return hs
end
-- Orphaned, Conflict, InstanceNotFound, Unverified.
hs.status = "Degraded"
hs.message = status.state
if message ~= "" then
  hs.message = hs.message .. ": " .. message
end
return hs
