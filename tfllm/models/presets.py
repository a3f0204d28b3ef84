"""`from_preset`: build a model of a named size from a plain dict of config values."""

from tfllm.errors import ConfigError


class PresetMixin:
    """Gives a model class `from_preset(name, **overrides)` over its `presets` dict."""

    presets = {}

    @classmethod
    def from_preset(cls, name, **overrides):
        """A randomly initialised model of the named size; keyword args override config values."""
        if name not in cls.presets:
            raise ConfigError(
                f"Unknown {cls.__name__} preset {name!r}; available: {', '.join(sorted(cls.presets))}"
            )
        return cls(**{**cls.presets[name], **overrides})
