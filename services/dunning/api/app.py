"""The dunning service's FastAPI app; run with `uvicorn --factory services.dunning.api.app:create_app`."""

from fastapi import FastAPI

from services.dunning.adapters.email import SmtpConfig, SmtpSender
from services.dunning.api.routes import router
from services.dunning.application.mailer import MailerConfig
from services.dunning.application.scheduler import DunningScheduler, Mailer
from services.dunning.config import DunningSettings
from services.dunning.consumers import CONSUMERS
from shared.web.app import create_service_app
from shared.web.runtime import Worker


def create_app(settings: DunningSettings | None = None) -> FastAPI:
    settings = settings or DunningSettings()
    sender = SmtpSender(
        SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
            use_tls=settings.smtp_use_tls,
        )
    )
    config = MailerConfig(
        seller_name=settings.seller_name,
        from_address=settings.from_address,
        reply_to=settings.reply_to,
        pay_link_base=settings.pay_link_base,
        timezone=settings.timezone,
        quiet_start=settings.quiet_start,
        quiet_end=settings.quiet_end,
    )
    workers: list[Worker] = (
        [
            DunningScheduler(settings.scheduler_interval_seconds),
            Mailer(settings.mailer_interval_seconds, sender, config),
        ]
        if settings.run_scheduler
        else []
    )
    return create_service_app(
        settings,
        title="Ledgerline dunning service",
        description="Follow-up policies, reminders by e-mail, late fees, escalation, promises to pay.",
        routers=[router],
        consumers=CONSUMERS,
        workers=workers,
    )
