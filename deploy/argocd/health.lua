-- Argo CD health for mtls-egress.io/ClientCertificateBinding.
-- Install it as argocd-cm's resource.customizations.health.mtls-egress.io_ClientCertificateBinding
-- (see the README). Argo CD sets the global `obj` to the live binding and takes the table
-- this returns: {status = Healthy | Progressing | Degraded, message = ...}.
--
--   no status yet, or status of an older generation  Progressing
--   Ready=True                                        Healthy (CertificateExpiringSoon says so)
--   Ready=False, reason Pending (the proxy is taking
--   the certificate; usually seconds)                 Progressing
--   Ready=False, any other reason                     Degraded, with the reason and message
--
-- Only Lua 5.1 and its base library: what Argo CD's gopher-lua runs (no string library).
local hs = {}

local function readyCondition()
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" then
      return condition
    end
  end
  return nil
end

local function describe(condition)
  local text = tostring(condition.reason)
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the mtls-egress controller to report on this binding"
  return hs
end

if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the mtls-egress controller to observe generation " .. tostring(obj.metadata.generation)
    .. " (the status is of generation " .. tostring(obj.status.observedGeneration) .. ")"
  return hs
end

local ready = readyCondition()
if ready == nil or ready.status == "Unknown" then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  if ready.reason == "CertificateExpiringSoon" then
    hs.message = describe(ready)
  elseif obj.status.endpoint ~= nil then
    hs.message = "Ready: call " .. obj.status.endpoint
  else
    hs.message = describe(ready)
  end
  return hs
end

if ready.reason == "Pending" then
  hs.status = "Progressing"
else
  hs.status = "Degraded"
end
hs.message = describe(ready)
return hs
