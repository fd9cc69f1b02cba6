"""A business rule said no: the status code and a message for people."""


class ServiceError(Exception):
    def __init__(self, status_code: int, detail: str):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


class NotFound(ServiceError):
    def __init__(self, detail: str):
        super().__init__(404, detail)


class Conflict(ServiceError):
    def __init__(self, detail: str):
        super().__init__(409, detail)


class Invalid(ServiceError):
    def __init__(self, detail: str):
        super().__init__(422, detail)
