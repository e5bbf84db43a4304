"""The local stack's spawner: user servers as local processes, offering the same profiles as KubeSpawner.

Runs inside the hub (the chart's hub package set). It takes hub_config.profiles(facts) unchanged (KubeSpawner's
profile_list shape) and honours what a process can: the size's CPU and memory limits and guarantees (the
hub passes them on as CPU_LIMIT, MEM_LIMIT, ... to the server, which shows them) and the profile's
environment (PANGEO_SIZE). Node selectors and tolerations place pods; here there is nowhere else to go.
Memory is not enforced with RLIMIT_AS: JupyterLab and its kernels reserve far more address space than they use.
"""

import html

from jupyterhub.spawner import SimpleLocalProcessSpawner
from tornado import web
from traitlets import List, default

# The KubeSpawner profile override keys that mean the same on a local-process spawner.
LOCAL_OVERRIDES = ("cpu_limit", "cpu_guarantee", "mem_limit", "mem_guarantee")


class PangeoLocalSpawner(SimpleLocalProcessSpawner):
    profile_list = List(config=True, help="KubeSpawner-style profiles (hub_config.profiles(facts)).")

    @default("options_form")
    def _options_form_default(self):
        return self.render_profiles() if self.profile_list else ""

    def default_profile(self):
        return next((p for p in self.profile_list if p.get("default")), self.profile_list[0])

    def render_profiles(self):
        chosen = self.default_profile()["slug"]
        items = []
        for profile in self.profile_list:
            slug = html.escape(profile["slug"])
            checked = " checked" if profile["slug"] == chosen else ""
            items.append(
                f'<label class="profile" for="profile-item-{slug}" style="display:block;margin:0.5em 0">'
                f'<input type="radio" name="profile" id="profile-item-{slug}" value="{slug}"{checked}> '
                f'<strong>{html.escape(profile["display_name"])}</strong> '
                f'<span>{html.escape(profile.get("description", ""))}</span></label>')
        return "\n".join(items)

    def options_from_form(self, formdata):
        return {"profile": formdata.get("profile", [self.default_profile()["slug"]])[0]}

    def chosen_profile(self):
        slug = (self.user_options or {}).get("profile") or self.default_profile()["slug"]
        for profile in self.profile_list:
            if profile["slug"] == slug:
                return profile
        allowed = ", ".join(p["slug"] for p in self.profile_list)
        raise web.HTTPError(400, f"unknown profile {slug!r}; the profiles here are: {allowed}")

    def apply_profile(self, profile):
        override = profile.get("kubespawner_override", {})
        for key in LOCAL_OVERRIDES:
            if key in override:
                setattr(self, key, override[key])
        self.environment = {**self.environment, **override.get("environment", {}),
                            "PANGEO_SIZE": profile["slug"]}

    @default("apply_user_options")
    def _apply_user_options_default(self):
        # JupyterHub >= 5.3 hands user_options to this hook before start (and warns of options left
        # unhandled); the profile is ours to apply.
        return _apply_profile_option

    async def start(self):
        if self.profile_list:
            self.log.info("Starting %s's server with profile %s", self.user.name, self.chosen_profile()["slug"])
        return await super().start()


def _apply_profile_option(spawner, user_options):
    if spawner.profile_list:
        spawner.apply_profile(spawner.chosen_profile())
