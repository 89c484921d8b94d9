# mmdet's runtime, plus what every mmkd distillation config needs: mmkd imported (registers its
# modules).
_base_ = 'mmdet::_base_/default_runtime.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
