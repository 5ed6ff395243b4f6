-- Argo CD health of an argomap ArgoCdInstance
-- (argocd-cm key resource.customizations.health.argomap.io_ArgoCdInstance).
-- Read from what argomap wrote: Progressing until it has checked this generation, then
-- Ready's verdict.
local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for argomap's first check"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for argomap to check generation " .. generation
  return hs
end
local ready = condition(status, "Ready")
if ready == nil or ready.reason == "Pending" then
  hs.status = "Progressing"
  hs.message = "Waiting for argomap's first check"
  return hs
end
local message = ready.message or ""
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message
  return hs
end
if ready.reason == "Suspended" then
  hs.status = "Suspended"
  hs.message = message
  return hs
end
-- Every failed check, a stale status (Ready Unknown) and a status too large to write.
hs.status = "Degraded"
hs.message = ready.reason or "NotReady"
if message ~= "" then
  hs.message = hs.message .. ": " .. message
end
return hs
