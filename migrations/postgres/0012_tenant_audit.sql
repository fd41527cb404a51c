-- A tenant's audit settings, as JSON: what its call records keep of the arguments (nothing,
-- a digest, or the arguments redacted), sensitive argument names beside the built-in ones,
-- and how many days its records are kept (0: the control plane's default).
ALTER TABLE tenants ADD COLUMN audit TEXT NOT NULL DEFAULT '{}';
